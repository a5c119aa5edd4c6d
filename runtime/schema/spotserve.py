"""SpotServe's schema: its model, spot economics and mechanics, the ablation level, and its
trace (availability and requests) and approach sections (`SpotServeConfig`, named by its
registry entry; the shared part is runtime/schema/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from runtime.schema import MAX_TRACE_S, ApproachConfig, Config, TraceConfig, described


@dataclass
class ModelConfig:
    """A SpotServe LLM: its shape, the memory stand-in, and its per-layer latency profile."""

    name: str = field(default=MISSING, metadata=described("6.7B, 20B, 30B or tiny"))
    layers: int = field(default=MISSING, metadata=described("real decoder layers", ge=1))
    padded_layers: int = field(default=MISSING, metadata=described("layer count a pipeline degree must divide", ge=1))
    hidden: int = field(default=MISSING, metadata=described("hidden size", ge=1))
    heads: int = field(default=1, metadata=described("attention heads (the finest tensor-parallel split)", ge=1))
    vocab: int = field(default=51200, metadata=described("vocabulary size", ge=1))
    max_seq_len: int = field(default=640, metadata=described("input + output tokens a KV cache holds", ge=1))
    bytes_per_value: int = field(default=4, metadata=described("4 for fp32 (the artifact's), 2 for fp16", ge=1))
    max_tp: int = field(default=8, metadata=described("largest tensor-parallel degree profiled", ge=1))
    min_world_size: int = field(
        default=1, metadata=described("fewest GPUs (tp x pp) that hold the model: the memory stand-in", ge=1)
    )
    max_batch: int = field(default=4, metadata=described("largest batch a replica runs (the artifact's --mbs)", ge=1))
    input_len: int = field(default=512, metadata=described("prompt tokens of every request", ge=1))
    output_len: int = field(default=128, metadata=described("generated tokens of every request", ge=1))
    final_fix_factor: float = field(default=1.1, metadata=described("safety multiplier on every latency", gt=0))
    latency_model: str = field(
        default="gpipe",
        metadata=described(
            "how a configuration's batch latency is computed: gpipe (every phase (pp + M - 1) stage times of "
            "batch/M) or artifact (the artifact's solver.py get_approx_latency, term for term)"
        ),
    )
    pp_init_comm_ms: float = field(default=0.0, metadata=described("ms per pipeline boundary, prefill", ge=0))
    pp_incr_comm_ms: float = field(default=0.0, metadata=described("ms per pipeline boundary, one decode step", ge=0))
    embed_ms: list[float] = field(
        default_factory=list, metadata=described("embedding + LM head ms per batch size", gt=0)
    )
    profile_batches: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8], metadata=described("profiled batch sizes", ge=1)
    )
    profile_tps: list[int] = field(default_factory=list, metadata=described("profiled tensor-parallel degrees", ge=1))
    init_ms: list[list[float]] = field(
        default_factory=list, metadata=described("prefill ms per layer, [tp index][batch index]", gt=0)
    )
    incr_ms: list[list[float]] = field(
        default_factory=list, metadata=described("one decode step ms per layer, [tp index][batch index]", gt=0)
    )
    request_rate_rps: float = field(default=0.35, metadata=described("the AE's request rate for this model", gt=0))
    required_tpt: float = field(
        default=0.4, metadata=described("the throughput the optimizer must meet, requests/s", gt=0)
    )
    source: str = field(default="", metadata=described("where the numbers come from"))


@dataclass
class MechanicsConfig:
    """Behaviours of the SpotServe artifact (Hsword/SpotServe, branch artifact) that a GPipe
    serving system need not share; all off is ours, `experiment=spotserve_artifact` turns them
    on (runtime/policies/spotserve/mechanics.py says where each comes from)."""

    jit_interruption: bool = field(
        default=False,
        metadata=described(
            "FasterTransformer's just-in-time interruption: a running batch always completes; before each new "
            "batch the replica estimates the decode steps that fit before its deadline (conservative for a "
            "shrinking fleet, optimistic for a growing one) and runs only those, or stops"
        ),
    )
    power_of_two_batches: bool = field(
        default=False, metadata=described("a replica's batch is the largest power of two <= the requests there (FT)")
    )
    fix_factor_planning_only: bool = field(
        default=False,
        metadata=described(
            "the profile's final_fix_factor is a planning margin only (the artifact's solver and estimator): "
            "simulated replicas run at the profiled time, not the profiled time x the factor"
        ),
    )
    old_batching: bool = field(
        default=False,
        metadata=described(
            "the AE scripts' --old-batching: requests left waiting are dispatched ahead to busy replicas, up to "
            "2 batches each for the baselines and 1 for spotserve, bound to them"
        ),
    )
    deadline_from_cost: bool = field(
        default=False,
        metadata=described(
            "every drain's deadline is notice + grace - the change's estimated cost, negative when the fleet "
            "grows: the baselines' 0.5 s (a removal drains 0.5 s early), spotserve's migration estimate"
        ),
    )


@dataclass
class SpotConfig:
    """Spot-instance economics and mechanics of a SpotServe run."""

    gpus_per_instance: int = field(default=4, metadata=described("GPUs per instance (g4dn.12xlarge: 4 T4)", ge=1))
    grace_period_s: float = field(
        default=30.0, metadata=described("notice before a preemption (and an acquisition)", ge=0)
    )
    network_gbps: float = field(
        default=50.0, metadata=described("link bandwidth between instances, for migration", gt=0)
    )
    load_gbps: float = field(
        default=8.0, metadata=described("Gbit/s a GPU reloads its shard from storage at (8: ~1 GB/s local disk)", gt=0)
    )
    restart_s: float = field(
        default=5.0, metadata=described("starting an inference engine process (trace seconds)", ge=0)
    )
    switch_overhead_s: float = field(default=0.5, metadata=described("fixed cost added to every reconfiguration", ge=0))
    price_spot_per_hour: float = field(
        default=1.9046, metadata=described("USD per instance-hour, spot (g4dn.12xlarge)", ge=0)
    )
    price_ondemand_per_hour: float = field(default=3.912, metadata=described("USD per instance-hour, on-demand", ge=0))
    mechanics: MechanicsConfig = field(default_factory=MechanicsConfig)


@dataclass
class AvailabilityEventConfig:
    """One event of an availability trace."""

    at_s: float = field(default=MISSING, metadata=described("trace seconds", ge=0, le=MAX_TRACE_S))
    op: str = field(default=MISSING, metadata=described("add, remove, tpt (target throughput change) or end"))
    instances: list[str] = field(default_factory=list, metadata=described("instance names added or removed"))
    ondemand: bool = field(default=False, metadata=described("the added instances are on-demand (priced so)"))
    required_tpt: float | None = field(default=None, metadata=described("new target throughput (op tpt)", gt=0))


@dataclass
class RequestsConfig:
    """The LLM request stream of a SpotServe trace."""

    rate_rps: float | None = field(
        default=None, metadata=described("mean arrival rate; null: the model's request_rate_rps", gt=0)
    )
    rates_per_minute: list[float] = field(
        default_factory=list, metadata=described("a fluctuating rate, one value per minute (workload traces)", ge=0)
    )
    distribution: str = field(default="gamma", metadata=described("gamma or poisson inter-arrival times"))
    cv: float = field(default=1.0, metadata=described("coefficient of variation of inter-arrival times (gamma)", gt=0))
    input_len: int | None = field(default=None, metadata=described("prompt tokens; null: the model's", ge=1))
    output_len: int | None = field(default=None, metadata=described("generated tokens; null: the model's", ge=1))
    path: str | None = field(default=None, metadata=described("replay an artifact id,arrival_s,input_len,offset file"))


@dataclass
class SpotServeTraceConfig(TraceConfig):
    """An availability trace (instances added and removed) and its request stream."""

    availability: list[AvailabilityEventConfig] = field(
        default_factory=list, metadata=described("instance add/remove events")
    )
    availability_path: str | None = field(
        default=None, metadata=described("read an artifact JSON-lines trace or g4dn.csv instead")
    )
    availability_window_s: list[float] = field(
        default_factory=list,
        metadata=described("[start_s, end_s] of g4dn.csv to replay (empty: all of it)", ge=0),
    )
    requests: RequestsConfig = field(default_factory=RequestsConfig, metadata=described("the request stream"))


@dataclass
class SpotServeApproachConfig(ApproachConfig):
    """SpotServe's approaches take no settings of their own (a plugin reads `options`)."""


@dataclass
class SpotServeConfig(Config):
    model: ModelConfig = field(default_factory=ModelConfig)
    spot: SpotConfig = field(default_factory=SpotConfig)
    trace: SpotServeTraceConfig = field(default_factory=SpotServeTraceConfig)
    approach: SpotServeApproachConfig = field(default_factory=SpotServeApproachConfig)
    ablation: int = field(default=0, metadata=described("ablation level 0..4 (Figure 9), cumulative", ge=0, le=4))
