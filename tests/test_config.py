"""The real composed config: every group option composes and validates; bad values are one
error naming the key; placement puts every role at a unique address."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.deploy.placement import place
from orchestrator.plan import resolve, typed_config
from runtime.exceptions import ConfigError
from runtime.policies.spotserve.registry import APPROACHES as SPOT_APPROACHES
from runtime.schema import HostConfig, HostfileConfig
from tests.conftest import CONF, compose_config


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def system_of(group: str, option: str) -> str:
    """The system an option belongs to: SpotServe's models, availability traces and approaches."""
    text = (CONF / group / f"{option}.yaml").read_text()
    spot = group == "model" or (group == "trace" and "availability:" in text) or option in SPOT_APPROACHES
    return "spotserve" if spot else "diffserve"


@pytest.mark.parametrize("group", ["cascade", "model", "trace", "approach", "hostfile", "execution", "system"])
def test_every_option_of_every_group_composes_and_validates(group: str) -> None:
    for option in options(group):
        system = option if group == "system" else system_of(group, option)
        extra = ["model=tiny"] if group == "trace" and option.startswith("tiny_spot") else []  # traces for tiny only
        resolve(compose_config(f"system={system}", f"{group}={option}", *extra))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trace=As"], r"^trace: As is a SpotServe availability trace: it needs system=spotserve$"),
        (["system=spotserve", "trace=3to24qps"], r"^trace: 3to24qps has no availability events"),
        (
            ["approach=rerouting"],
            r"^approach: unknown diffserve approach 'rerouting' \(a spotserve approach: it needs system=spotserve\)",
        ),
        (
            ["system=spotserve", "approach=static"],
            r"^approach: unknown spotserve approach 'static' \(a diffserve approach",
        ),
    ],
)
def test_options_of_the_other_system_are_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(compose_config(*overrides))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_validates(experiment: str) -> None:
    resolve(compose_config(f"experiment={experiment}"))


@pytest.mark.parametrize(
    ("trace", "workers"), [("1to8qps", 4), ("2to16qps", 8), ("2_5to20qps", 10), ("3to24qps", 12), ("4to32qps", 16)]
)
def test_workers_default_to_what_the_trace_suggests(trace: str, workers: int) -> None:
    assert resolve(compose_config(f"trace={trace}")).workers == workers
    assert resolve(compose_config(f"trace={trace}", "hostfile.workers=3")).workers == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("time_scale=0", r"^time_scale: must be > 0 \(got 0\)"),
        ("time_scale=-2", r"^time_scale: must be > 0"),
        ("hostfile.workers=0", r"^hostfile.workers: must be >= 1 \(got 0\)"),
        ("trace.path=/nonexistent/trace.txt", r"^trace.path: no such file: /nonexistent/trace.txt"),
        (
            "approach.light_workers=20",
            r"^approach.light_workers: the static plan needs 20 GPU workers but the run has 12",
        ),
        ("cascade.slo_s=0.01", r"^cascade.slo_s: 0.01 s is below the fastest single batch \(sdxs, batch 1: 0.05 s\)"),
        ("trace.high_qps=-1", r"^trace.high_qps: must be > 0"),
        ("approach.threshold=1.5", r"^approach.threshold: must be <= 1 \(got 1.5\)"),
        ("execution.mode=quantum", r"^execution.mode: unknown mode 'quantum' \(allowed: simulated"),
        ("run.drop_factor=0", r"^run.drop_factor: must be > 0"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    cfg = compose_config("approach=static", "trace=3to24qps", override)
    with pytest.raises(ConfigError, match=message):
        resolve(cfg)


def test_one_slo_per_cascade() -> None:
    for name, slo in (("sdturbo", 5.0), ("sdxs", 5.0), ("sdxlltn", 15.0)):
        assert typed_config(compose_config(f"cascade={name}")).cascade.slo_s == slo  # type: ignore[union-attr]


def hostfile(*hosts: HostConfig, base: int = 50050) -> HostfileConfig:
    return HostfileConfig(name="t", base_port=base, hosts=list(hosts))


def test_local_placement_is_in_start_order_with_unique_ports() -> None:
    roles = list(resolve(compose_config("trace=2to16qps")).addresses)
    assert [r.role for r in roles][:3] == ["controller", "load_balancer", "sink"]
    assert roles[-1].role == "client"
    assert len([r for r in roles if r.role == "worker"]) == 8
    assert len({r.address for r in roles}) == len(roles) == 12
    assert roles[0].address == "127.0.0.1:50050"


def test_gpu_hosts_take_one_worker_per_gpu_slot() -> None:
    cpu = HostConfig(name="cpu", address="10.0.0.1", roles=["controller", "load_balancer", "sink", "client"])
    g1 = HostConfig(name="g1", address="10.0.0.2", gpus=[0, 1], roles=["worker"])
    g2 = HostConfig(name="g2", address="10.0.0.3", gpus=[0, 1], workers_per_gpu=2, roles=["worker"])
    roles = place(hostfile(cpu, g1, g2), 6)
    workers = [r for r in roles if r.role == "worker"]
    assert [(w.host, w.gpu) for w in workers] == [("g1", 0), ("g1", 1), ("g2", 0), ("g2", 0), ("g2", 1), ("g2", 1)]
    assert workers[2].address == "10.0.0.3:50050" and workers[3].address == "10.0.0.3:50051"
    with pytest.raises(ConfigError, match="7 workers requested but the hosts have 6 GPU worker slots"):
        place(hostfile(cpu, g1, g2), 7)


def test_placement_errors_name_the_problem() -> None:
    a = HostConfig(name="a", roles=["controller", "load_balancer", "sink", "client", "worker"])
    b = HostConfig(name="b", roles=["controller"])
    with pytest.raises(ConfigError, match="the controller must be placed on exactly one host"):
        place(hostfile(a, b), 2)
    c = HostConfig(name="c", roles=["controller", "load_balancer", "sink", "client"])
    with pytest.raises(ConfigError, match="no host runs workers"):
        place(hostfile(c), 2)
    # two hostfile entries with one address share its port space: a clash is caught
    d = HostConfig(name="d", address="127.0.0.1", roles=["controller", "load_balancer", "sink", "client"])
    e = HostConfig(name="e", address="127.0.0.1", roles=["worker"])
    roles = place(hostfile(d, e), 2)
    assert len({r.address for r in roles}) == len(roles)


def test_conf_tree_follows_the_vocabulary() -> None:
    for group in ("system", "cascade", "trace", "approach", "hostfile", "execution", "experiment"):
        assert (CONF / group).is_dir(), group
    assert Path(CONF / "hostfile" / "local.yaml").is_file()
