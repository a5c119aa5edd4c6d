"""Leases: the limit the orchestrator announces follows its measured renewals within a floor and
a cap, the supervisor (a real process) holds a role while the announced limit holds and stops
it after, and a renewal over SSH starts no process on the host."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.deploy.supervisor import LIMIT_CAP, announced_limit, lease_limit, lease_text


def test_the_limit_follows_the_slowest_recent_renewal_within_floor_and_cap() -> None:
    assert lease_limit(6.0, 1.5, []) == 6.0  # nothing measured yet: the floor
    assert lease_limit(6.0, 1.5, [0.003, 0.01]) == 6.0  # fast renewals: the floor
    assert lease_limit(6.0, 1.5, [0.2, 2.0]) == pytest.approx(1.5 + 3 * 2.0)  # a busy host: more
    assert lease_limit(6.0, 1.5, [60.0]) == LIMIT_CAP * 6.0  # never past the cap


def test_the_supervisor_reads_the_announced_limit_within_floor_and_cap(tmp_path: Path) -> None:
    lease = tmp_path / "lease"
    assert announced_limit(str(lease), 2.0) == 2.0  # no file
    for text, limit in (("", 2.0), ("junk", 2.0), ("nan", 2.0), ("1.0", 2.0), ("4.5", 4.5), ("99", 2.0 * LIMIT_CAP)):
        lease.write_text(text)
        assert announced_limit(str(lease), 2.0) == limit, text
    lease.write_text(lease_text(3.25))
    assert len(lease.read_bytes()) == 16 and announced_limit(str(lease), 2.0) == 3.25


def _supervise(tmp_path: Path, floor_s: float) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "orchestrator.deploy.supervisor",
        "--exit-file",
        str(tmp_path / "exit.json"),
        "--pid-file",
        str(tmp_path / "pid.json"),
        "--lease-file",
        str(tmp_path / "lease"),
        "--lease-s",
        str(floor_s),
        "--stop-s",
        "1",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(120)",
    ]
    return subprocess.Popen(args, start_new_session=True)


@pytest.mark.slow
def test_a_role_is_held_while_the_announced_limit_holds_and_stopped_after(tmp_path: Path) -> None:
    """Floor 1 s, announced 2.8 s (the cap is 3): at an age past the floor the role still runs; once the age passes
    the announced limit its supervisor stops it and says which limit it was."""
    (tmp_path / "lease").write_text(lease_text(2.8))
    written = time.time()
    sup = _supervise(tmp_path, floor_s=1.0)
    try:
        while time.time() - written < 2.2:  # past the floor, inside the announced limit
            assert sup.poll() is None, "stopped inside the announced limit"
            time.sleep(0.1)
        assert sup.wait(timeout=60) != 0
    finally:
        if sup.poll() is None:
            sup.kill()
    ended = json.loads((tmp_path / "exit.json").read_text())
    assert ended["note"].startswith("lease expired") and "limit 2.8 s" in ended["note"]
    assert time.time() - written >= 2.8


@pytest.mark.slow
def test_an_old_lease_file_without_a_limit_keeps_the_floor(tmp_path: Path) -> None:
    (tmp_path / "lease").touch()  # what an orchestrator before announced limits wrote
    sup = _supervise(tmp_path, floor_s=1.0)
    try:
        assert sup.wait(timeout=60) != 0
    finally:
        if sup.poll() is None:
            sup.kill()
    assert "limit 1 s" in json.loads((tmp_path / "exit.json").read_text())["note"]
