"""Deployment over SSH against real sshd processes: one network namespace per host when root,
else sshd on loopback addresses (tests/lab.py). Every test checks that no role process is
left on any host; the lab removes its sshd processes, namespaces and links even on failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.sshd import Lab, LabHost, sshd_available
from orchestrator.experiment import run_experiment
from tests.conftest import ROOT, compose_config, free_base_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sshd_available(), reason="openssh-server is not installed")]

RUN = ("cascade=sdxs", "approach=static", "trace=1to8qps", "trace.duration_s=20", "time_scale=5", "run.progress=false")
CPU_ROLES = ["controller", "load_balancer", "sink", "client"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(3, tmp_path / "lab") as the_lab:
        yield the_lab
    # Nothing of the lab outlives it: no namespace, no link, no sshd.
    assert not [
        n
        for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        if f"sl{the_lab.id}" in n
    ]
    assert f"sl{the_lab.id}" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout


def three_hosts(lab: Lab, conf: Path, **overrides: Any) -> None:
    """h1 runs the CPU roles, h2 and h3 two GPU workers each."""
    h1, h2, h3 = lab.hosts
    entries = [
        lab.host_entry(h1, CPU_ROLES),
        lab.host_entry(h2, ["worker"], gpus=[0, 1], **overrides.get("h2", {})),
        lab.host_entry(h3, ["worker"], gpus=[0, 1], **overrides.get("h3", {})),
    ]
    lab.write_hostfile(conf, "lab", entries, workers=4)


def ssh_of(lab: Lab, host: LabHost, **changes: Any) -> dict[str, Any]:
    """`host`'s ssh settings in the lab's hostfile, with `changes`."""
    return {**lab.host_entry(host, [])["ssh"], **changes}


def sent_queries(lab: Lab, host: LabHost) -> int:
    """How many queries the client on `host` has sent so far (its journal's send events)."""
    journals = list(host.workdir.glob("*/roles/client/client.journal.jsonl"))
    if not journals:
        return 0
    return sum(1 for line in journals[0].read_text().splitlines() if line.startswith('["s"'))


def wait_for_sent(lab: Lab, host: LabHost, count: int, timeout: float = 120) -> None:
    """Until the run is replaying: an observable state, not a guess at how long start-up takes."""
    deadline = time.monotonic() + timeout
    while sent_queries(lab, host) < count:
        assert time.monotonic() < deadline, f"the client on {host.name} did not send {count} queries"
        time.sleep(0.1)


def searchpath(conf: Path) -> str:
    return f"hydra.searchpath=[file://{conf}]"


def orchestrate(tmp_path: Path, conf: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        searchpath(conf),
        "hostfile=lab",
        f"paths.output_dir={tmp_path / 'out'}",
        *RUN,
        *args,
    ]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def no_roles_anywhere(lab: Lab) -> bool:
    return all(not lab.role_pids(h) for h in lab.hosts)


def role_pid(lab: Lab, host: LabHost, name: str) -> int:
    for pid in lab.role_pids(host):
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if f"--name {name} " in cmd and "orchestrator.deploy.supervisor" not in cmd:
            return pid
    raise AssertionError(f"{name} is not running on {host.name}")


def one_error_line(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def test_three_hosts_run_the_trace_with_the_accounting_of_a_local_run(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    remote = run_experiment(
        compose_config(searchpath(conf), "hostfile=lab", *RUN, f"paths.output_dir={tmp_path / 'out'}"),
        tmp_path / "out" / "ssh",
    )
    local = run_experiment(
        compose_config(
            *RUN, "hostfile.workers=4", f"hostfile.base_port={free_base_port()}", f"paths.output_dir={tmp_path / 'out'}"
        ),
        tmp_path / "out" / "local",
    )
    for result in (remote, local):
        s = result.summary
        assert s["accounting_ok"] and s["queries_sent"] == s["queries_in_trace"]
        assert s["completed_on_time"] + s["completed_late"] + s["dropped"] + s["unfinished"] == s["queries_sent"]
    assert remote.summary["queries_sent"] == local.summary["queries_sent"]
    assert remote.summary["unfinished"] == local.summary["unfinished"] == 0
    run = remote.run_dir
    for host, role in (
        ("h1", "controller"),
        ("h1", "sink"),
        ("h2", "worker-0"),
        ("h2", "worker-1"),
        ("h3", "worker-3"),
    ):
        assert (run / "logs" / host / f"{role}.log").stat().st_size > 0, (host, role)
    assert (run / "roles" / "controller" / "decisions.parquet").exists()
    import pandas as pd

    records = pd.read_parquet(run / "records.parquet")
    workers = set(records["light_worker"].dropna()) | set(records["heavy_worker"].dropna())
    assert workers & {"worker-0", "worker-1"} and workers & {"worker-2", "worker-3"}, "both GPU hosts served queries"
    assert no_roles_anywhere(lab)


def test_hosts_check_and_sync(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    ok = subprocess.run(
        [sys.executable, "-m", "orchestrator.hosts", "check", searchpath(conf), "hostfile=lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "all hosts ready" in ok.stdout and ok.stdout.count("same code") == 3
    # h2 gets an environment without this project: check says so, sync installs the wheel.
    env = tmp_path / "hostenv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    deps = next(Path(sys.executable).parent.parent.glob("lib/python*/site-packages"))
    (site / "servelab_deps.pth").write_text(f"{deps}\n")  # the dependencies, not the project
    three_hosts(lab, conf, h2={"python": str(env / "bin" / "python")})
    before = subprocess.run(
        [sys.executable, "-m", "orchestrator.hosts", "check", searchpath(conf), "hostfile=lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert before.returncode == 1 and "run `python -m orchestrator.hosts sync`" in before.stdout
    # (h1 and h3 share this test's own environment: sync only h2.)
    synced = subprocess.run(
        [sys.executable, "-m", "orchestrator.hosts", "sync", "--host", "h2", searchpath(conf), "hostfile=lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "h2: ok installed" in synced.stdout
    after = subprocess.run(
        [sys.executable, "-m", "orchestrator.hosts", "check", searchpath(conf), "hostfile=lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert after.returncode == 0, after.stdout
    assert (
        str(site)
        in subprocess.run(
            [str(env / "bin" / "python"), "-c", "import orchestrator; print(orchestrator.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout
    )


def test_a_host_that_refuses_the_key(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf, h2={"ssh": ssh_of(lab, lab.hosts[1], key_file=str(lab.hosts[2].key))})
    proc = orchestrate(tmp_path, conf)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = one_error_line(err)
    assert f"host h2 (root@{lab.hosts[1].address}:22): authentication failed (the host refused the key)" in line
    assert no_roles_anywhere(lab)


def test_an_unreachable_host(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf, h3={"address": f"{lab.prefix}.250"})
    proc = orchestrate(tmp_path, conf)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert f"host h3 (root@{lab.prefix}.250:22): unreachable" in one_error_line(err)
    assert no_roles_anywhere(lab)


def test_a_role_crashing_at_start_up_reports_its_log_tail(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    dist = tmp_path / "dist.txt"
    dist.write_text("0.5\n0.5\nbroken\n0.5\n")
    proc = orchestrate(tmp_path, conf, f"cascade.confidence_path={dist}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = one_error_line(err)
    assert (
        "start-up failed: worker-" in line and "(exit code 3)" in line and "dist.txt:3: expected a probability" in line
    )
    assert no_roles_anywhere(lab)


def test_kill_9_of_a_remote_worker_during_the_run(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    proc = orchestrate(tmp_path, conf, "approach=diffserve", "trace.duration_s=40", "time_scale=4")
    h3 = lab.host("h3")
    wait_for_sent(lab, lab.host("h1"), 20)
    os.kill(role_pid(lab, h3, "worker-3"), signal.SIGKILL)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "Worker lost during the run: worker-3 on h3 exited (killed by signal 9)" in err
    run_dir = next((tmp_path / "out").glob("diffserve/runs/*"))
    assert "Evicted <worker=worker-3" in (run_dir / "logs" / "h1" / "controller.log").read_text()
    assert no_roles_anywhere(lab)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupting_the_orchestrator_leaves_nothing_on_any_host(
    lab: Lab, tmp_path: Path, sig: signal.Signals
) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    proc = orchestrate(tmp_path, conf, "trace.duration_s=200")
    wait_for_sent(lab, lab.host("h1"), 5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "error: interrupted; every role was stopped" in err
    assert no_roles_anywhere(lab)


def test_a_port_clash_on_a_remote_host(lab: Lab, tmp_path: Path) -> None:
    if not lab.netns:
        pytest.skip("needs a host with its own address space (network namespaces)")
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    h2 = lab.host("h2")
    listener = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            str(h2.netns),
            sys.executable,
            "-c",
            f"import socket,time; s=socket.socket(); s.bind(('{h2.address}', {lab.base_port + 1})); s.listen(); print('up', flush=True);"
            " time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
        proc = orchestrate(tmp_path, conf, "hostfile.ports=fixed")
        _, err = proc.communicate(timeout=120)
    finally:
        listener.kill()
        listener.wait()
    assert proc.returncode == 1
    assert f"port {lab.base_port + 1} on {h2.address} (for the worker-1 on h2) is not free" in one_error_line(err)
    assert no_roles_anywhere(lab)


def test_a_remote_host_too_small_for_its_roles_is_refused_before_any_starts(lab: Lab, tmp_path: Path) -> None:
    """An SSH host's cores and memory are read when the run connects (with the port check):
    h1's four roles on its cores at 1.5 per core are one too many."""
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    cores = len(os.sched_getaffinity(0))
    proc = orchestrate(tmp_path, conf, f"limits.processes_per_core={3 / cores}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err[-2000:]
    assert f"limits.processes_per_core: host h1 would run 4 role processes on {cores} cores" in one_error_line(err)
    assert no_roles_anywhere(lab)


def test_a_lost_host_is_noticed_and_the_run_goes_on_without_it(lab: Lab, tmp_path: Path) -> None:
    if not lab.netns:
        pytest.skip("cutting a host needs network namespaces")
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    proc = orchestrate(tmp_path, conf, "approach=diffserve", "trace.duration_s=60", "time_scale=3")
    h3 = lab.host("h3")
    wait_for_sent(lab, lab.host("h1"), 20)
    lab.cut(h3)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    assert "Host h3 lost during the run; going on without its 2 workers" in err
    run_dir = next((tmp_path / "out").glob("diffserve/runs/*"))
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accounting_ok"]
    controller_log = (run_dir / "logs" / "h1" / "controller.log").read_text()
    assert "Evicted <worker=worker-2" in controller_log and "Evicted <worker=worker-3" in controller_log
    assert no_roles_anywhere(lab)


def test_values_reaching_a_remote_shell_are_quoted(lab: Lab, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    canary = tmp_path / "PWNED"
    odd = f"{lab.hosts[1].dir}/work dir;$(touch {canary});echo x"
    proc = orchestrate(tmp_path, conf, f"hostfile.hosts.1.workdir='{odd}'")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert not canary.exists(), "a value was run by the remote shell"
    assert any(Path(odd).glob("*/roles/worker-0/exit.json")), "the odd directory was used as given"
    assert no_roles_anywhere(lab)


def connect_lab_host(lab: Lab, host: LabHost, **ssh: Any) -> None:
    from omegaconf import OmegaConf

    from orchestrator.deploy import connect
    from runtime.schema import HostConfig

    entry = {**lab.host_entry(host, ["worker"]), "ssh": ssh_of(lab, host, **ssh)}
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HostConfig), entry))
    assert isinstance(config, HostConfig)
    connect(config).close()


def test_host_keys_are_checked_against_known_hosts(lab: Lab, tmp_path: Path) -> None:
    from runtime.exceptions import DeployError

    h2, h3 = lab.hosts[1], lab.hosts[2]
    connect_lab_host(lab, h2)  # the lab's known_hosts holds every host's key
    missing = tmp_path / "nowhere" / "known_hosts"
    with pytest.raises(DeployError, match=r"known_hosts does not exist, so no host key can be checked"):
        connect_lab_host(lab, h2, known_hosts=str(missing))
    others = tmp_path / "others"
    others.write_text("".join(ln + "\n" for ln in lab.known_hosts.read_text().splitlines() if h2.address not in ln))
    with pytest.raises(DeployError, match=rf"unknown host key: it is not in {others}; .* ssh.accept_new=true"):
        connect_lab_host(lab, h2, known_hosts=str(others))
    wrong = tmp_path / "wrong"  # h2's address with h3's key: a host that changed (or an impostor)
    h3_key = next(ln for ln in lab.known_hosts.read_text().splitlines() if h3.address in ln).split(" ", 1)[1]
    h2_name = next(ln for ln in lab.known_hosts.read_text().splitlines() if h2.address in ln).split(" ", 1)[0]
    wrong.write_text(f"{h2_name} {h3_key}\n")
    with pytest.raises(DeployError, match="the host's key CHANGED"):
        connect_lab_host(lab, h2, known_hosts=str(wrong), accept_new=True)
    # accept_new: an unknown host's key is added, and the next connection checks it.
    connect_lab_host(lab, h2, known_hosts=str(missing), accept_new=True)
    assert h2.address in missing.read_text()
    connect_lab_host(lab, h2, known_hosts=str(missing))
    # `hosts check` with no known_hosts file: a FAIL row, no traceback.
    conf = tmp_path / "conf"
    three_hosts(lab, conf, h2={"ssh": ssh_of(lab, h2, known_hosts=str(tmp_path / "none"))})
    check = subprocess.run(
        [sys.executable, "-m", "orchestrator.hosts", "check", searchpath(conf), "hostfile=lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1 and "FAIL" in check.stdout and "Traceback" not in check.stdout + check.stderr


def test_tls_between_hosts_and_calls_without_the_token_are_refused(lab: Lab, tmp_path: Path) -> None:
    """A run across hosts uses TLS with the run's own certificate; a plaintext call, or a TLS
    call without the run's token, cannot stop a role."""
    import grpc

    from runtime.protos import servelab_pb2 as pb
    from runtime.protos import servelab_pb2_grpc as pbg

    conf = tmp_path / "conf"
    three_hosts(lab, conf)
    proc = orchestrate(tmp_path, conf, "trace.duration_s=30")
    h1 = lab.host("h1")
    wait_for_sent(lab, h1, 5)
    spec = next(h1.workdir.glob("*/spec.json"))
    import json

    controller = next(r for r in json.loads(spec.read_text())["roles"] if r["role"] == "controller")
    plain = pbg.RoleControlStub(grpc.insecure_channel(controller["address"]))
    with pytest.raises(grpc.RpcError) as plaintext:
        plain.Stop(pb.StopRequest(reason="stranger"), timeout=5)
    assert plaintext.value.code() is grpc.StatusCode.UNAVAILABLE, "the server speaks TLS only"
    identity = json.loads((spec.parent / "identity.json").read_text())
    assert (spec.parent / "identity.json").stat().st_mode & 0o077 == 0, "the identity is owner-only"
    creds = grpc.ssl_channel_credentials(root_certificates=identity["tls_cert"].encode())
    tls = grpc.secure_channel(controller["address"], creds, options=[("grpc.ssl_target_name_override", "servelab-run")])
    with pytest.raises(grpc.RpcError) as no_token:
        pbg.RoleControlStub(tls).Stop(pb.StopRequest(reason="stranger"), timeout=5)
    assert no_token.value.code() is grpc.StatusCode.UNAUTHENTICATED
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert not list(h1.workdir.glob("*/identity.json")), "the run's secrets are removed at its end"
    assert no_roles_anywhere(lab)


def test_a_lease_is_renewed_over_one_channel_without_a_command(lab: Lab, tmp_path: Path) -> None:
    """Renewals are SFTP writes on a channel that stays open: no command is started for one
    (a busy host is slow to start processes), and the file's time is the host's clock."""
    from omegaconf import OmegaConf

    from orchestrator.deploy import connect
    from orchestrator.deploy.supervisor import announced_limit, lease_text
    from runtime.schema import HostConfig

    h2 = lab.host("h2")
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HostConfig), lab.host_entry(h2, ["worker"])))
    assert isinstance(config, HostConfig)
    host = connect(config)
    lease = h2.workdir / "lease"
    h2.workdir.mkdir(parents=True, exist_ok=True)
    try:

        def no_command(*args: object, **kwargs: object) -> None:
            raise AssertionError("a renewal started a command on the host")

        host.run = no_command  # type: ignore[method-assign]
        times = []
        for limit in (6.0, 7.5, 6.0):
            host.renew(str(lease), lease_text(limit))
            assert announced_limit(str(lease), 6.0) == limit
            times.append(lease.stat().st_mtime_ns)
            time.sleep(0.05)
        assert times == sorted(times) and times[0] < times[-1], "every renewal moved the file's time"
    finally:
        host.close()
