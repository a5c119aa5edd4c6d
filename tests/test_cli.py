"""Bad input on the command line: one line naming the key or file, a non-zero exit, no
traceback, and no process left behind."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import ROOT, free_base_port, processes_mentioning


def orchestrate(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "orchestrator", f"paths.output_dir={tmp_path}", "run.progress=false", *args]
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # a run that should not have started: stop its roles too
            out, err = proc.communicate(timeout=120)
            pytest.fail(f"still running after {timeout} s: {err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def orchestrate_here(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command's entry point in this process, for errors that stop it before anything runs
    (what a subprocess would print, without starting Python again)."""
    from orchestrator.app import main

    argv = ["orchestrator", f"paths.output_dir={tmp_path}", "run.progress=false", *args]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        with mock.patch.object(sys, "argv", argv), redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, pattern: str) -> None:
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == code, proc.stderr
    assert len(errors) == 1, proc.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["cascade=nope"], "cascade: unknown cascade 'nope' (allowed: sdturbo, sdxlltn, sdxs, tiny)"),
        (["trace=5to50qps"], "trace: unknown trace '5to50qps' (allowed: 1to8qps, 2_5to20qps"),
        (["approach=clipper"], "approach: unknown diffserve approach 'clipper' (allowed: all_heavy, all_light"),
        (["clock=fast"], "clock: unknown clock 'fast' (allowed: wall, virtual)"),
        (
            ["clock=virtual", "cascade=tiny", "execution=real"],
            "clock: the virtual clock replays simulated execution only (use clock=wall with execution=real)",
        ),
        (
            ["time_scale=100"],
            "time_scale: 100 makes the controller heartbeat every 0.01 wall seconds (run.heartbeat_s / time_scale), "
            "faster than the 0.02 s the wall testbed keeps; allowed: time_scale <= 50 with run.heartbeat_s=1, or clock=virtual",
        ),
        (["time_scale=0"], "time_scale: must be > 0 (got 0)"),
        (["time_scale=-1"], "time_scale: must be > 0"),
        (["hostfile.workers=0"], "hostfile.workers: must be >= 1 (got 0)"),
        (["trace.path=/no/such/trace.txt"], "trace.path: no such file: /no/such/trace.txt"),
        (["cascade.slo=3"], "cascade.slo: no such key (did you mean cascade.slo_s?)"),
        (["+approach.thresold=0.3"], "approach.thresold: no such key (did you mean approach.threshold?)"),
        (["approach.thresold=0.3"], "approach.thresold: no such key (did you mean approach.threshold?)"),
        (["+cascde=sdxs"], "cascde: no such key (did you mean cascade?)"),
        (
            ["cascade=sdxss"],
            "cascade: unknown cascade 'sdxss' (allowed: sdturbo, sdxlltn, sdxs, tiny); did you mean sdxs?",
        ),
        (["time_scale=fast"], "time_scale"),
        (["-m", "cascade=sdxs,nope"], "cascade: unknown cascade 'nope'"),
        (["approach=diffserve", "approach.period_s=0"], "approach.period_s: must be > 0 (got 0)"),
        (
            ["cascade=sdxlltn", "cascade.slo_s=0.3"],
            "cascade.slo_s: 0.3 s is below the fastest single batch (sdxl_lightning, batch 1: 0.55 s)",
        ),
        (
            ["approach=static", "approach.heavy_workers=30"],
            "approach.light_workers: the static plan needs 32 GPU workers but the run has 12",
        ),
        (["system=spotserve", "model=99B"], "model: unknown model '99B' (allowed: 20B, 30B, 6.7B, tiny)"),
        (["system=spotserve", "trace=Cs"], "trace: unknown trace 'Cs' (allowed:"),
        (["system=spotserve", "model.required_tpt=0"], "model.required_tpt: must be > 0 (got 0)"),
        (["system=spotserve", "spot.grace_period_s=-1"], "spot.grace_period_s: must be >= 0 (got -1)"),
        (
            ["system=spotserve", "model=30B", "trace=od3"],
            "model: 30B fits on no configuration of the first 12 GPUs (it needs 16: model.min_world_size)",
        ),
        (["system=spotserve", "ablation=7"], "ablation: must be <= 4 (got 7)"),
        (["system=spotserve", "trace.availability_path=/no/such.txt"], "trace.availability_path: no such file"),
        (
            ["system=spotserve", "cascade=sdxs"],
            "cascade: the spotserve system takes model=20B|30B|6.7B|tiny, not a cascade (add system=diffserve to run diffserve)",
        ),
        (
            ["system=spotserve", "trace.availability_window_s=[0,60]"],
            "trace.availability_window_s: only for a g4dn.csv trace.availability_path",
        ),
        (["trace=Bs"], "trace: Bs is a spotserve trace: it needs system=spotserve"),
        (["run.drop_factor=high"], "run.drop_factor: Value 'high' of type 'str' could not be converted to Float"),
        (["-m", "hydra/launcher=nope", "seed=0,1"], "Could not find 'hydra/launcher/nope'"),
        (
            ["system=spotserve", "model=tiny", "execution=real", "trace=tiny_spot", "model.heads=2"],
            "model.heads: 2 heads cannot be split over tensor parallelism 4",
        ),
        (
            ["system=spotserve", "model=tiny", "execution=real", "trace=tiny_spot", "model.max_seq_len=40"],
            "model.max_seq_len: 40 positions cannot hold input_len 32 + output_len 16",
        ),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, args: list[str], pattern: str) -> None:
    proc = orchestrate_here(tmp_path, *args)
    assert_one_line_error(proc, 2, pattern)
    assert not list(tmp_path.glob("*/runs/*")), "nothing started"


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('[-5, "remove", {"nodes": ["a"]}]', ":2: must be a time >= 0"),
        ('[5, "kill", {"nodes": ["a"]}]', ":2: unknown op 'kill'"),
        ('[5, "remove", {"nodes": ["z"]}]', ":2: cannot remove 'z': it is not alive"),
    ],
)
def test_bad_availability_line_names_file_and_line(tmp_path: Path, line: str, pattern: str) -> None:
    trace = tmp_path / "avail.txt"
    trace.write_text(f'[0, "add", {{"nodes": ["a", "b", "c"]}}]\n{line}\n[60000, "DONE", {{"nodes": []}}]\n')
    proc = orchestrate_here(tmp_path, "system=spotserve", "model=6.7B", f"trace.availability_path={trace}")
    assert_one_line_error(proc, 2, f"{trace}{pattern}")
    assert not list(tmp_path.glob("*/runs/*")), "nothing started"


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["approach=diffserve", "approach.demand_factor=-1"], "approach.demand_factor: must be > 0 (got -1)"),
        (["approach=diffserve", "approach.demand_factor=nan"], "approach.demand_factor: must be a finite number"),
        (["time_scale=inf"], "time_scale: must be a finite number (got inf)"),
        (["trace.high_qps=inf"], "trace.high_qps: must be a finite number (got inf)"),
        (["trace.duration_s=inf"], "trace.duration_s: must be a finite number (got inf)"),
        (["trace.duration_s=1e9"], "trace.duration_s: must be <= 604800 (got 1e+09)"),
        (["run.rpc_timeout_s=inf"], "run.rpc_timeout_s: must be a finite number (got inf)"),
        (["time_scale=1000"], "time_scale: 1000 makes the controller heartbeat every 0.001 wall seconds"),
        (
            ["hostfile.base_port=65000", "hostfile.workers=540"],
            "hostfile.base_port: 65000 leaves no port for worker-",
        ),
        (["hostfile.base_port=70000"], "hostfile.base_port: must be <= 65535 (got 70000)"),
        (["system=spotserve", "model.required_tpt=inf"], "model.required_tpt: must be a finite number"),
        (["system=spotserve", "spot.grace_period_s=nan"], "spot.grace_period_s: must be a finite number"),
    ],
)
def test_numbers_out_of_range_are_one_line(tmp_path: Path, args: list[str], pattern: str) -> None:
    """One schema-level rule (finite, and inside the field's declared range) for every key."""
    assert_one_line_error(orchestrate_here(tmp_path, *args), 2, pattern)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["hostfile.workers=5000"], "limits.workers: hostfile.workers asks for 5,000 workers, more than the 4,096"),
        (
            ["hostfile.workers=5000", "limits.workers=10000", "limits.processes_per_core=4"],
            "limits.processes_per_core: host localhost would run 5,004 role processes on ",
        ),
        (
            ["time_scale=1e-9"],
            "time_scale: 1e-09 makes the 357 trace seconds last 9.92e+07 wall hours, more than limits.wall_hours=24",
        ),
        (["metrics.window_s=1e-9"], "metrics.window_s: 1e-09 s makes 347,000,000,000 windows of the 347-s trace"),
        (["trace.high_qps=1e9"], "limits.queries: trace 3to24qps would send about 182,532,601,484 queries, more than"),
        (
            ["system=spotserve", "trace.requests.rate_rps=1e9"],
            "limits.queries: trace Bs would send about 1,020,000,000,000",
        ),
        (["clock=virtual", "limits.memory_fraction=0.000001"], "limits.memory_fraction: the run would need about "),
        (["limits.memory_fraction=0.000001"], "limits.memory_fraction: host localhost would need about "),
        (
            ["clock=virtual", "hostfile.workers=2000", "limits.workers=1000"],
            "limits.workers: hostfile.workers asks for 2,000",
        ),
        (
            ["hydra.run.dir=" + "a" * 300],
            "hydra.run.dir: the name aaaaaaaaaaaaaaaaaaaaaaaa... is 300 bytes, longer than",
        ),
    ],
)
def test_a_run_bigger_than_its_limits_is_refused_before_it_starts(
    tmp_path: Path, args: list[str], pattern: str
) -> None:
    assert_one_line_error(orchestrate_here(tmp_path, *args), 2, pattern)
    assert not list(tmp_path.glob("*/runs/*")), "nothing started"


def test_limits_are_raised_on_purpose(tmp_path: Path) -> None:
    """A bound names its key; raising the key runs what it refused (here on the virtual clock)."""
    proc = orchestrate(
        tmp_path,
        "clock=virtual",
        "trace.duration_s=20",
        "hostfile.workers=20",
        "limits.workers=20",
        "tracking.enabled=false",
    )
    assert proc.returncode == 0, proc.stderr
    proc = orchestrate_here(
        tmp_path,
        "clock=virtual",
        "trace.duration_s=20",
        "hostfile.workers=21",
        "limits.workers=20",
        "tracking.enabled=false",
    )
    assert_one_line_error(proc, 2, "limits.workers: hostfile.workers asks for 21 workers, more than the 20")


def test_the_output_folder_name_must_fit_the_file_system(tmp_path: Path) -> None:
    proc = orchestrate_here(tmp_path, f"paths.output_dir={tmp_path / ('b' * 300)}")
    assert_one_line_error(proc, 2, "paths.output_dir: the name bbbbbbbbbbbbbbbbbbbbbbbb... is 300 bytes")


def test_an_availability_file_of_too_many_instances_is_refused_before_reading_on(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.jsonl"
    names = [f"i{k}" for k in range(2000)]
    fleet.write_text(json.dumps([0, "add", {"nodes": names}]) + "\n" + json.dumps([60000, "DONE", {}]) + "\n")
    proc = orchestrate_here(tmp_path, "system=spotserve", f"trace.availability_path={fleet}")
    assert_one_line_error(proc, 2, f"limits.instances: {fleet} (trace.availability_path) adds 2,000 instances")


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        (
            "10,9223372036854775807",
            ":2: expected 'arrival_ms,prompt_index' with arrival_ms >= 0 and an integer 0 <= prompt_index < 2^53",
        ),
        ("10,1e300", ":2: expected 'arrival_ms,prompt_index'"),
    ],
)
def test_a_prompt_index_past_what_a_trace_can_hold_is_one_line(tmp_path: Path, line: str, pattern: str) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text(f"0,0\n{line}\n")
    assert_one_line_error(orchestrate_here(tmp_path, f"trace.path={trace}"), 2, f"{trace}{pattern}")


def test_a_trace_file_longer_than_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("".join(f"{i * 10},{i % 7}\n" for i in range(1001)))
    proc = orchestrate_here(tmp_path, f"trace.path={trace}", "limits.queries=1000")
    assert_one_line_error(proc, 2, f"limits.queries: {trace} (trace.path) has 1,001 lines, more than the 1,000")


def test_a_trace_beyond_a_week_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "trace.txt"
    bad.write_text("100.0,5\n1e15,6\n")
    assert_one_line_error(orchestrate_here(tmp_path, f"trace.path={bad}"), 2, f"{bad}:2: arrival at 1e+15 ms is beyond")


def test_a_window_past_the_end_of_the_spot_trace_is_refused(tmp_path: Path) -> None:
    g4dn = tmp_path / "g4dn.csv"  # the artifact's full-trace format: t_ms,add|remove,node
    g4dn.write_text("0,add,node1\n0,add,node2\n0,add,node3\n60000,remove,node3\n120000,add,node3\n")
    args = ["system=spotserve", "model=tiny", f"trace.availability_path={g4dn}"]
    proc = orchestrate_here(tmp_path, *args, "trace.availability_window_s=[0,10000]")
    assert_one_line_error(
        proc, 2, "trace.availability_window_s: [0, 10000] ends after g4dn.csv does (its rows span 0-120 s)"
    )


def _hostfile_dir(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / "conf" / "hostfile").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "hostfile" / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def test_malformed_hostfile_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    searchpath = _hostfile_dir(tmp_path, "bad", "name: bad\nhosts:\n  - name: a\n    address: [1, 2\n")
    proc = orchestrate_here(tmp_path, searchpath, "hostfile=bad")
    assert_one_line_error(proc, 2, f"{tmp_path}/conf/hostfile/bad.yaml:5: malformed YAML (expected ',' or ']'")


def test_a_missing_python_on_a_host_is_one_line(tmp_path: Path) -> None:
    text = (
        "name: nopy\nhosts:\n  - name: here\n    address: 127.0.0.1\n    python: /no/such/python\n"
        "    roles: [controller, load_balancer, sink, client, worker]\n"
    )
    proc = orchestrate_here(tmp_path, _hostfile_dir(tmp_path, "nopy", text), "hostfile=nopy")
    assert_one_line_error(proc, 2, "hostfile.hosts[0].python: no such interpreter here: /no/such/python")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write to, root included: a read-only tmpfs (or, for a normal user, mode 0500)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (root without CAP_SYS_ADMIN)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_dir_is_one_line(read_only_dir: Path) -> None:
    proc = orchestrate_here(read_only_dir / "runs")
    assert_one_line_error(proc, 2, f"paths.output_dir: {read_only_dir} is not writable")


@pytest.mark.parametrize(
    ("uri", "pattern"),
    [
        ("file:///tmp/mlruns", "tracking.uri: file:// stores are not supported; use sqlite:///"),
        ("http://127.0.0.1:9/", "tracking.uri: no MLflow server answers at http://127.0.0.1:9/"),
        (
            "http://alice:s3cret@127.0.0.1:9/",
            "tracking.uri: no MLflow server answers at http://alice:***@127.0.0.1:9/",
        ),
    ],
)
def test_the_tracking_store_is_checked_before_the_run(tmp_path: Path, uri: str, pattern: str) -> None:
    proc = orchestrate_here(tmp_path, f"tracking.uri={uri}")
    assert_one_line_error(proc, 2, pattern)
    assert "s3cret" not in proc.stderr


@pytest.mark.slow
def test_a_bad_value_is_one_line_from_the_real_command(tmp_path: Path) -> None:
    """The same check as above, through a real `python -m orchestrator` process."""
    assert_one_line_error(orchestrate(tmp_path, "cascade=nope"), 2, "cascade: unknown cascade 'nope'")


@pytest.mark.slow
def test_malformed_trace_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "trace.txt"
    bad.write_text("100.0,5\n200.0,6\n300.0;7\n")
    proc = orchestrate(tmp_path, f"trace.path={bad}", f"hostfile.base_port={free_base_port()}")
    assert_one_line_error(proc, 2, f"{bad}:3: expected 'arrival_ms,prompt_index'")
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_port_in_use(tmp_path: Path) -> None:
    base = free_base_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base))
        holder.listen()
        proc = orchestrate(
            tmp_path, f"hostfile.base_port={base}", "hostfile.ports=fixed", "trace=1to8qps", "trace.duration_s=5"
        )
    assert_one_line_error(proc, 1, f"port {base} on 127.0.0.1 (for the controller on localhost) is not free")
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_role_crashing_at_start_up_reports_its_log_tail(tmp_path: Path) -> None:
    """A worker that cannot read its confidence table exits; the error names it and quotes its log."""
    dist = tmp_path / "dist.txt"
    dist.write_text("0.5\n0.5\nnot-a-number\n0.5\n")
    proc = orchestrate(
        tmp_path,
        f"cascade.confidence_path={dist}",
        f"hostfile.base_port={free_base_port()}",
        "trace=1to8qps",
        "trace.duration_s=5",
        "hostfile.workers=2",
    )
    assert_one_line_error(proc, 1, "start-up failed: worker-")
    assert "exit code 3" in proc.stderr and "dist.txt:3: expected a probability" in proc.stderr
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_every_role_and_keeps_what_was_measured(tmp_path: Path, sig: signal.Signals) -> None:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        f"paths.output_dir={tmp_path}",
        "run.progress=false",
        f"hostfile.base_port={free_base_port()}",
        "trace=1to8qps",
        "time_scale=2",
        "hostfile.workers=3",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        "Replaying" in log.read_text() for log in tmp_path.glob("diffserve/runs/*/orchestrator.log")
    ):
        time.sleep(0.2)
    time.sleep(2)  # some of the replay measured
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "error: interrupted; every role was stopped" in err and "Traceback" not in err
    assert processes_mentioning(str(tmp_path)) == []
    run_dir = next(tmp_path.glob("diffserve/runs/*"))
    assert (run_dir / "records.parquet").exists() and (run_dir / "summary.json").exists()
    assert (run_dir / "logs" / "localhost" / "controller.log").stat().st_size > 0


@pytest.mark.slow
def test_ctrl_c_while_the_command_loads_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C in the command's first moments (Python still importing the app, the MLflow
    writer starting) ends it with one line and exit 130, not a traceback: the writer, started
    with Ctrl-C ignored, leaves the interrupt to the run."""
    # `python -m orchestrator ...` with Ctrl-C's default action, as in a terminal (a process
    # started from a background job, or by some test runners, would inherit it ignored)
    start = "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    start += f"sys.argv = ['orchestrator', 'clock=virtual', 'paths.output_dir={tmp_path}']; "
    start += "runpy.run_module('orchestrator', run_name='__main__', alter_sys=True)"
    proc = subprocess.Popen(
        [sys.executable, "-c", start], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)  # well inside the command's first seconds, wherever it is
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: interrupted"), err


def test_halting_the_roles_never_waits_forever_on_a_call() -> None:
    """A Halt whose answer never comes (a SIGTERM that struck inside a gRPC call can leave the
    channel unable to end it: it cannot be caused at will, so a future stands in) holds the
    teardown up for 2 x HALT_S at most, all roles together; stopping them by signal follows."""
    import grpc

    from orchestrator.deploy.launcher import HALT_S, Launcher

    waits: list[float | None] = []

    class Never:
        def result(self, timeout: float | None = None) -> None:
            waits.append(timeout)
            time.sleep(timeout or 0.0)
            raise grpc.FutureTimeoutError()

    class Stuck:
        def __init__(self, host: str) -> None:
            self.host = mock.Mock()
            self.host.name = host

        def control(self) -> mock.Mock:
            stub = mock.Mock()
            stub.Halt.future.return_value = Never()
            return stub

    launcher = Launcher.__new__(Launcher)
    launcher.lost = set()
    launcher.halt_all([Stuck("a"), Stuck("a"), Stuck("b")])  # type: ignore[list-item]
    assert len(waits) == 3 and None not in waits, "every answer awaited, none without a bound"
    assert sum(w or 0.0 for w in waits) <= 2 * HALT_S + 1e-6, "one budget for all the roles"


def test_imports_pause_the_collector_and_freeze_what_they_made() -> None:
    """`startup.importing()`: no collection while the block runs, what it made frozen after,
    and the collector as it was before (on, or off when a caller had turned it off)."""
    import gc

    from orchestrator.startup import importing

    frozen = gc.get_freeze_count()
    try:
        with importing():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]  # containers, as modules' objects are
        assert gc.isenabled() and gc.get_freeze_count() >= frozen + len(made)
        gc.disable()
        with importing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()  # this test process's later tests collect as usual


def test_help_is_hydras_without_hydra() -> None:
    """A bare --help is answered from the config folder (orchestrator/help.py) and prints what
    Hydra's own --help prints, without importing Hydra or the systems."""
    fast = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, sys; sys.argv = ['orchestrator', '--help']; runpy.run_module('orchestrator', run_name='__main__');"
            "print(sorted(m for m in ('hydra', 'matplotlib', 'pandas', 'orchestrator.systems') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hydra = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['orchestrator', '--help']; from orchestrator.app import main; main()",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text, _, imported = fast.rstrip("\n").rpartition("\n")
    assert imported == "[]"
    assert "Config groups (group=option):\napproach: " in hydra and "\ntrace: 1to8qps, " in hydra
    assert text.strip() == hydra.strip()
