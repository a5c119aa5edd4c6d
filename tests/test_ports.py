"""Port ranges of wall-clock runs: two runs at the same moment never take the same range."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from orchestrator.deploy import ports
from runtime.exceptions import ConfigError
from runtime.spec import RoleAddress
from tests.conftest import free_base_port


def addresses(base: int, n: int = 12) -> tuple[RoleAddress, ...]:
    return tuple(
        RoleAddress(
            name=f"r{i}", role="worker", host="localhost", address=f"127.0.0.1:{base + i}", bind=f"127.0.0.1:{base + i}"
        )
        for i in range(n)
    )


def first_port(r: ports.PortReservation) -> int:
    return min(int(a.bind.rsplit(":", 1)[1]) for a in r.addresses)


def test_two_runs_take_two_ranges_and_a_released_range_is_taken_again(tmp_path: Path) -> None:
    # The locks alone decide here (no listening check: other tests run meanwhile); a base on a
    # block boundary, so the 12 ports take exactly two blocks.
    base = (free_base_port(80) // 10 + 1) * 10
    a = ports.reserve(addresses(base), lambda _: False, tmp_path)
    b = ports.reserve(addresses(base), lambda _: False, tmp_path)
    assert first_port(a) == base
    assert first_port(b) == base + 20  # 12 ports round up to two blocks of 10
    assert {x.name for x in b.addresses} == {x.name for x in a.addresses}
    a.release()
    c = ports.reserve(addresses(base), lambda _: False, tmp_path)
    assert first_port(c) == base
    b.release()
    c.release()


def test_a_port_something_listens_on_moves_the_range_unless_the_host_is_remote(tmp_path: Path) -> None:
    base = free_base_port(80)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 5))
        holder.listen()
        moved = ports.reserve(addresses(base), lambda _: True, tmp_path)
        assert first_port(moved) >= base + 20  # (further if another test's process took a port meanwhile)
        moved.release()
        remote = ports.reserve(addresses(base), lambda _: False, tmp_path)  # checked over SSH instead
        assert first_port(remote) == base
        remote.release()


def test_no_range_left_is_one_line(tmp_path: Path) -> None:
    held = ports.reserve(addresses(65524), lambda _: False, tmp_path)  # the last 12 ports
    with pytest.raises(ConfigError, match=r"^hostfile.base_port: no free range of 12 ports from 65524 up to 65535"):
        ports.reserve(addresses(65524), lambda _: False, tmp_path)
    held.release()


@pytest.mark.parametrize("kind", ["open to others", "a link"])
def test_a_port_lock_folder_that_is_not_the_users_own_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    from orchestrator.deploy.ports import lock_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = tmp_path / f"servelab-ports-{os.getuid()}"
    if kind == "a link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "elsewhere")
    else:
        folder.mkdir()
        folder.chmod(0o777)
    with pytest.raises(ConfigError, match="is not this user's own private folder"):
        lock_dir()
    if kind == "a link":
        folder.unlink()
    else:
        folder.rmdir()
    assert lock_dir() == folder and (folder.stat().st_mode & 0o777) == 0o700  # made anew, private
