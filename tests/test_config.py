"""The real composed config: every group option composes and validates; bad values are one
error naming the key; placement puts every role at a unique address."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.compose import load_plan
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
        (["trace=As"], r"^trace: As is a spotserve trace: it needs system=spotserve$"),
        (["system=spotserve", "trace=3to24qps"], r"^trace: 3to24qps is a diffserve trace: it needs system=diffserve$"),
        (
            ["system=spotserve", "cascade.slo_s=3"],
            r"^cascade.slo_s: a diffserve setting; the spotserve system has no such key \(add system=diffserve",
        ),
        (["ablation=2"], r"^ablation: a spotserve setting; the diffserve system has no such key"),
        (["system=spotserve", "approach.threshold=0.5"], r"^approach.threshold: a diffserve setting"),
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
    """Each system's schema holds only its own sections: another system's trace, section or
    approach setting is refused before composition, in one line naming the system it needs."""
    with pytest.raises(ConfigError, match=message):
        load_plan(overrides)


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


# ----------------------------------------------------------------------------- limits


def test_a_host_is_bounded_by_its_cores_and_its_memory() -> None:
    from orchestrator.config.limits import BYTES_PER_ROLE_PROCESS, Machine, check_host
    from runtime.schema import LimitsConfig

    lim = LimitsConfig(processes_per_core=4, memory_fraction=0.5)
    check_host("h", 8, Machine(cores=2, available_bytes=None), lim)  # 4 per core: 8 is the most
    with pytest.raises(ConfigError, match=r"limits.processes_per_core: host h would run 9 role processes on 2 cores"):
        check_host("h", 9, Machine(cores=2, available_bytes=None), lim)
    roomy = Machine(cores=64, available_bytes=20 * BYTES_PER_ROLE_PROCESS)
    check_host("h", 10, roomy, lim)  # half of what is available
    with pytest.raises(ConfigError, match=r"limits.memory_fraction: host h would need about .* for 11 role processes"):
        check_host("h", 11, roomy, lim)


def test_memory_is_estimated_from_the_measured_bytes_per_query() -> None:
    from orchestrator.config.limits import BASE_BYTES, BYTES_PER_QUERY, Machine, check_memory
    from runtime.schema import LimitsConfig

    lim = LimitsConfig(memory_fraction=1.0)
    room = Machine(cores=2, available_bytes=BASE_BYTES + 1000 * BYTES_PER_QUERY)
    check_memory(1000, 0, room, lim)
    with pytest.raises(
        ConfigError, match=rf"\(1,001 queries at ~{BYTES_PER_QUERY:,} bytes each, 0 local role processes\)"
    ):
        check_memory(1001, 0, room, lim)
    check_memory(10**12, 0, Machine(cores=2, available_bytes=None), lim)  # unknown memory: not checked


def test_the_expected_arrivals_are_what_the_generators_draw() -> None:
    """The bound on queries is checked before drawing them: its estimate is the draw's mean."""
    from runtime.traces.diffserve import expected_arrivals, generate

    for shape, low, high, duration in (("diurnal", 3, 24, 347), ("constant", 10, 10, 60.5)):
        expected = expected_arrivals(low, high, duration, shape)
        drawn = [len(generate("t", low, high, duration, 100, seed, shape)) for seed in range(20)]
        assert abs(sum(drawn) / len(drawn) - expected) < 3 * (expected / len(drawn)) ** 0.5 + 1

    from runtime.schema.spotserve import ModelConfig, RequestsConfig, SpotServeTraceConfig
    from runtime.traces.spotserve import expected_requests, generate_requests

    model = ModelConfig(name="m", request_rate_rps=2.0)
    for requests in (RequestsConfig(), RequestsConfig(rates_per_minute=[1.0, 4.0])):
        trace = SpotServeTraceConfig(name="t", duration_s=150.0, requests=requests)
        expected = expected_requests(trace, model)
        rate = None if requests.rates_per_minute else 2.0
        drawn = [
            len(generate_requests(rate, 150.0, "poisson", 1.0, seed, 8, 8, requests.rates_per_minute or None))
            for seed in range(20)
        ]
        assert expected == (300.0 if rate else 60 * 1 + 60 * 4 + 30 * 4)
        assert abs(sum(drawn) / len(drawn) - expected) < 3 * (expected / len(drawn)) ** 0.5 + 1


def test_trace_lines_are_counted_without_parsing(tmp_path: Path) -> None:
    from orchestrator.config.limits import count_lines

    for text, n in (("", 0), ("a\n", 1), ("a\nb", 2), ("a\nb\n", 2), ("x" * (3 << 20) + "\n" + "y", 2)):
        (tmp_path / "t").write_text(text)
        assert count_lines(tmp_path / "t") == n


@pytest.mark.parametrize(
    "overrides",
    [
        ["clock=virtual", "approach=proteus", "cascade.slo_s=5", "+approach.options.label=y"],
        ["system=spotserve", "model=20B", "trace=As", "clock=virtual"],
    ],
)
def test_the_saved_config_is_what_omegaconf_writes(overrides: list[str]) -> None:
    """config_resolved.yaml is written without OmegaConf's tree, byte for byte as its to_yaml
    would write it (a string YAML reads as another type stays quoted: 'y', '1.0')."""
    from omegaconf import OmegaConf

    from orchestrator.compose import load_plan
    from orchestrator.plan import config_text

    container = load_plan(overrides).container
    container["extra"] = {
        "looks_like_bool": "y",
        "looks_like_float": "1.0",
        "empty": "",
        "none": None,
        "long": "a long string, " * 12,  # past the emitter's line width
        "unicode": "µs, ±, é, 漢字",
        "special": ["inf", float("inf"), float("nan"), -0.0, 1e-300, "x: y", "- z", "#", "'q'", '"d"'],
    }
    assert config_text(container) == OmegaConf.to_yaml(container)
    assert "looks_like_bool: 'y'" in config_text(container)


def test_jobs_alike_are_checked_on_one_composition_with_each_ones_values() -> None:
    """The up-front check composes one config per group of jobs that differ only in plain
    values, then sets each job's values as Hydra does: every job's config is the one Hydra
    composes for it alone. A group option (`experiment=...`, `paths=...`, whose name is also
    a key) picks files and so tells groups apart."""
    from hydra import compose
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from orchestrator.compose import _alike, group_names, hydra_context, job_overrides

    jobs = job_overrides(["cascade=sdxs,sdturbo", "seed=0,1,2", "cascade.slo_s=4,5.5", "clock=virtual"])
    jobs += [["+approach.options.a=1", "seed=3"], ["seed=4", "seed=5"], ["hostfile.hosts=[]", "seed=6"]]
    jobs += [["experiment=smoke", "seed=7"], ["experiment=diffserve_paper", "seed=8"], ["paths=default", "seed=9"]]
    groups = _alike(jobs, group_names())
    # by cascade; an added key, a repeated one, a list: alone; each preset and `paths` its own group
    assert sorted(len(indices) for indices, _ in groups) == [1, 1, 1, 1, 1, 1, 6, 6]
    with hydra_context():
        for indices, values in (g for g in groups if len(g[0]) > 1):
            cfg = compose(config_name="config", overrides=jobs[indices[0]])
            for i, settings in zip(indices[1:], values[1:], strict=True):
                ConfigLoaderImpl._apply_overrides_to_config(OverridesParser.create().parse_overrides(settings), cfg)
                alone = compose(config_name="config", overrides=jobs[i])
                assert OmegaConf.to_container(cfg) == OmegaConf.to_container(alone), jobs[i]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["seed=0,1,2", "run.drop_factor=1,-1"], "run.drop_factor: must be > 0 (got -1)"),
        (["seed=0,abc"], "seed: Value 'abc' of type 'str' could not be converted to Integer"),
        (["cascade.slo_s=5,0.01"], "cascade.slo_s: 0.01 s is below the fastest single batch"),
    ],
)
def test_a_bad_value_in_a_group_of_alike_jobs_is_named(argv: list[str], message: str) -> None:
    from orchestrator.compose import precheck

    with pytest.raises(ConfigError) as err:
        precheck(["-m", "clock=virtual", *argv])
    assert message in str(err.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["experiment=diffserve_paper"],
        ["clock=virtual", "cascade=sdxs,sdturbo", "seed=0,1,2", "cascade.slo_s=4,5.5", "hydra.job.chdir=false"],
        ["system=spotserve", "clock=virtual", "model=6.7B", "approach=spotserve,rerouting", "seed=0,1"],
    ],
)
def test_a_sweeps_jobs_alike_share_one_composition_equal_to_hydras(argv: list[str]) -> None:
    """The launcher's loader (`SharedCompositions`, handed to it by our sweeper) composes the
    first job of a kind with Hydra and makes each other one from it: every job's config, Hydra's
    node included (its overrides, its folder name), is the one Hydra composes for it alone."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from hydra_plugins.servelab_sweepers.alike import _COMPOSED, SharedCompositions
    from hydra_plugins.servelab_sweepers.grids_sweeper import expand
    from orchestrator.compose import hydra_context

    with hydra_context():
        hydra = GlobalHydra.instance().config_loader()
        master = hydra.load_configuration("config", ["hydra/sweeper=grids", *argv], RunMode.MULTIRUN)
        sweeper = master.hydra.sweeper
        jobs = expand(list(sweeper.grids), [*argv, *(f"{k}={v}" for k, v in (sweeper.params or {}).items())])
        shared = SharedCompositions(hydra)
        made = [shared.load_sweep_config(master, job) for job in jobs]
        kinds = {k[2:] for k in _COMPOSED if k[0] == shared.sweep}
        assert len(kinds) < len(jobs), "some jobs share a composition"
        for job, cfg in zip(jobs, made, strict=True):
            alone = hydra.load_sweep_config(master, job)
            assert OmegaConf.to_container(cfg) == OmegaConf.to_container(alone), job
            assert OmegaConf.is_struct(cfg) and not OmegaConf.is_readonly(cfg.hydra)
