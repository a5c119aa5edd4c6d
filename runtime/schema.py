"""The typed schema of an experiment: every key a user can set, its default and its meaning.

These dataclasses are registered with Hydra's ConfigStore (see `orchestrator.config`), so a
YAML file or a command-line override with a wrong type fails at composition. The roles load
the same schema from the resolved config the orchestrator hands them, so the orchestrator
and every role read one description of the run. Values are checked for sense in
`orchestrator.config.validate`, not here: these classes hold no logic and do no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

MAX_TRACE_S = 7 * 24 * 3600.0  # the longest trace a run may replay: a week of trace time


def _help(text: str, **bounds: float) -> dict[str, object]:
    """A field's help text, and the range its value (or each value of a list) must lie in:
    gt, ge, lt, le. Every number is also checked to be finite (orchestrator.config.validate)."""
    return {"help": text, **bounds}


# --------------------------------------------------------------------------- system


@dataclass
class SystemConfig:
    name: str = field(default=MISSING, metadata=_help("diffserve or spotserve: which roles run"))


# --------------------------------------------------------------------------- cascade


@dataclass
class ProfileConfig:
    """Profiled latency of one model per batch size (milliseconds per batch)."""

    batch_sizes: list[int] = field(default_factory=list, metadata=_help("profiled batch sizes, ascending", ge=1))
    latency_ms: list[float] = field(default_factory=list, metadata=_help("latency of one batch of each size, ms", ge=0))
    source: str = field(default="", metadata=_help("where the numbers come from"))


@dataclass
class DiffusionModelConfig:
    """One diffusion model of a cascade (the light or the heavy one)."""

    name: str = field(default=MISSING, metadata=_help("short model name used in records and figures"))
    model_id: str = field(default="", metadata=_help("hub id or local directory of the pipeline"))
    pipeline: str = field(default="auto", metadata=_help("diffusers pipeline class name, or auto"))
    dtype: str = field(default="float16", metadata=_help("float16, bfloat16 or float32"))
    scheduler: str | None = field(
        default=None, metadata=_help("diffusers scheduler class name; null keeps the pipeline's")
    )
    scheduler_options: dict[str, Any] = field(
        default_factory=dict, metadata=_help("kwargs for the scheduler's from_config")
    )
    unet_weights: str | None = field(default=None, metadata=_help("hub id/file of a replacement UNet (SDXL-Lightning)"))
    steps: int = field(default=1, metadata=_help("denoising steps", ge=1))
    guidance: float = field(default=0.0, metadata=_help("classifier-free guidance scale", ge=0))
    resolution: int = field(default=512, metadata=_help("image height and width in pixels", ge=8))
    profile: ProfileConfig = field(default_factory=ProfileConfig, metadata=_help("latency per batch size"))
    unet: dict[str, Any] = field(
        default_factory=dict,
        metadata=_help(
            "the UNet's published shape (UNet2DConditionModel arguments, conf/unet/): profiled with random weights"
        ),
    )


@dataclass
class CurveConfig:
    """A piecewise-linear curve given by points (x ascending)."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    source: str = field(default="", metadata=_help("where the points come from"))


@dataclass
class DiscriminatorConfig:
    latency_ms: float = field(default=20.0, metadata=_help("simulated discriminator time per light batch, ms", ge=0))
    mode: str = field(
        default="live",
        metadata=_help("real execution: live (score each image) or table (the per-prompt confidence table)"),
    )
    weights: str | None = field(
        default=None, metadata=_help("state-dict file (.safetensors or torch state dict); tiny:discriminator")
    )
    architecture: str = field(default="small_cnn", metadata=_help("small_cnn or efficientnet_v2_s"))
    image_size: int = field(default=224, metadata=_help("input size the discriminator scores at", ge=8))


@dataclass
class StaticPlanConfig:
    """The fixed cascade plan that approach=static uses (the artifact's policy 8)."""

    threshold: float = field(default=0.0, metadata=_help("confidence threshold", ge=0, le=1))
    light_batch: int = field(default=1, metadata=_help("max batch of light workers", ge=1))
    heavy_batch: int = field(default=1, metadata=_help("max batch of heavy workers", ge=1))
    light_share: float = field(
        default=0.25, metadata=_help("fraction of GPU workers that run the light model", gt=0, lt=1)
    )
    source: str = field(default="")


@dataclass
class CascadeConfig:
    name: str = field(default=MISSING, metadata=_help("sdturbo, sdxs, sdxlltn or tiny"))
    slo_s: float = field(
        default=MISSING, metadata=_help("the one latency SLO of this cascade, seconds (trace time)", gt=0)
    )
    light: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    heavy: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    deferral_curve: CurveConfig = field(
        default_factory=CurveConfig,
        metadata=_help("f(t): fraction of prompts whose confidence is below threshold t"),
    )
    fid_table: CurveConfig = field(
        default_factory=CurveConfig,
        metadata=_help("FID against the fraction of queries served by the light model"),
    )
    fid_artifact_offset: float = field(
        default=0.0,
        metadata=_help("the artifact plotting script's hand-tuned shift of x in its FID recipe (fid_artifact_recipe)"),
    )
    static: StaticPlanConfig = field(default_factory=StaticPlanConfig)
    num_prompts: int = field(default=5000, metadata=_help("prompt indices 0..num_prompts-1 have a confidence", ge=1))
    confidence_path: str | None = field(
        default=None,
        metadata=_help("read per-prompt confidence from an artifact dist_*.txt file instead of drawing it"),
    )
    prompts_path: str | None = field(default=None, metadata=_help("prompt text file, one per line (real execution)"))


# --------------------------------------------------------------------------- model (SpotServe)


@dataclass
class ModelConfig:
    """A SpotServe LLM: its shape, the memory stand-in, and its per-layer latency profile."""

    name: str = field(default=MISSING, metadata=_help("6.7B, 20B, 30B or tiny"))
    layers: int = field(default=MISSING, metadata=_help("real decoder layers", ge=1))
    padded_layers: int = field(default=MISSING, metadata=_help("layer count a pipeline degree must divide", ge=1))
    hidden: int = field(default=MISSING, metadata=_help("hidden size", ge=1))
    heads: int = field(default=1, metadata=_help("attention heads (the finest tensor-parallel split)", ge=1))
    vocab: int = field(default=51200, metadata=_help("vocabulary size", ge=1))
    max_seq_len: int = field(default=640, metadata=_help("input + output tokens a KV cache holds", ge=1))
    bytes_per_value: int = field(default=4, metadata=_help("4 for fp32 (the artifact's), 2 for fp16", ge=1))
    max_tp: int = field(default=8, metadata=_help("largest tensor-parallel degree profiled", ge=1))
    min_world_size: int = field(
        default=1, metadata=_help("fewest GPUs (tp x pp) that hold the model: the memory stand-in", ge=1)
    )
    max_batch: int = field(default=4, metadata=_help("largest batch a replica runs (the artifact's --mbs)", ge=1))
    input_len: int = field(default=512, metadata=_help("prompt tokens of every request", ge=1))
    output_len: int = field(default=128, metadata=_help("generated tokens of every request", ge=1))
    final_fix_factor: float = field(default=1.1, metadata=_help("safety multiplier on every latency", gt=0))
    latency_model: str = field(
        default="gpipe",
        metadata=_help(
            "how a configuration's batch latency is computed: gpipe (every phase (pp + M - 1) stage times of "
            "batch/M) or artifact (the artifact's solver.py get_approx_latency, term for term)"
        ),
    )
    pp_init_comm_ms: float = field(default=0.0, metadata=_help("ms per pipeline boundary, prefill", ge=0))
    pp_incr_comm_ms: float = field(default=0.0, metadata=_help("ms per pipeline boundary, one decode step", ge=0))
    embed_ms: list[float] = field(default_factory=list, metadata=_help("embedding + LM head ms per batch size", gt=0))
    profile_batches: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8], metadata=_help("profiled batch sizes", ge=1)
    )
    profile_tps: list[int] = field(default_factory=list, metadata=_help("profiled tensor-parallel degrees", ge=1))
    init_ms: list[list[float]] = field(
        default_factory=list, metadata=_help("prefill ms per layer, [tp index][batch index]", gt=0)
    )
    incr_ms: list[list[float]] = field(
        default_factory=list, metadata=_help("one decode step ms per layer, [tp index][batch index]", gt=0)
    )
    request_rate_rps: float = field(default=0.35, metadata=_help("the AE's request rate for this model", gt=0))
    required_tpt: float = field(default=0.4, metadata=_help("the throughput the optimizer must meet, requests/s", gt=0))
    source: str = field(default="", metadata=_help("where the numbers come from"))


@dataclass
class MechanicsConfig:
    """Behaviours of the SpotServe artifact (Hsword/SpotServe, branch artifact) that a GPipe
    serving system need not share; all off is ours, `experiment=spotserve_artifact` turns them
    on (runtime/policies/spotserve/mechanics.py says where each comes from)."""

    jit_interruption: bool = field(
        default=False,
        metadata=_help(
            "FasterTransformer's just-in-time interruption: a running batch always completes; before each new "
            "batch the replica estimates the decode steps that fit before its deadline (conservative for a "
            "shrinking fleet, optimistic for a growing one) and runs only those, or stops"
        ),
    )
    power_of_two_batches: bool = field(
        default=False, metadata=_help("a replica's batch is the largest power of two <= the requests there (FT)")
    )
    fix_factor_planning_only: bool = field(
        default=False,
        metadata=_help(
            "the profile's final_fix_factor is a planning margin only (the artifact's solver and estimator): "
            "simulated replicas run at the profiled time, not the profiled time x the factor"
        ),
    )
    old_batching: bool = field(
        default=False,
        metadata=_help(
            "the AE scripts' --old-batching: requests left waiting are dispatched ahead to busy replicas, up to "
            "2 batches each for the baselines and 1 for spotserve, bound to them"
        ),
    )
    deadline_from_cost: bool = field(
        default=False,
        metadata=_help(
            "every drain's deadline is notice + grace - the change's estimated cost, negative when the fleet "
            "grows: the baselines' 0.5 s (a removal drains 0.5 s early), spotserve's migration estimate"
        ),
    )


@dataclass
class SpotConfig:
    """Spot-instance economics and mechanics of a SpotServe run."""

    gpus_per_instance: int = field(default=4, metadata=_help("GPUs per instance (g4dn.12xlarge: 4 T4)", ge=1))
    grace_period_s: float = field(default=30.0, metadata=_help("notice before a preemption (and an acquisition)", ge=0))
    network_gbps: float = field(default=50.0, metadata=_help("link bandwidth between instances, for migration", gt=0))
    load_gbps: float = field(
        default=8.0, metadata=_help("Gbit/s a GPU reloads its shard from storage at (8: ~1 GB/s local disk)", gt=0)
    )
    restart_s: float = field(default=5.0, metadata=_help("starting an inference engine process (trace seconds)", ge=0))
    switch_overhead_s: float = field(default=0.5, metadata=_help("fixed cost added to every reconfiguration", ge=0))
    price_spot_per_hour: float = field(
        default=1.9046, metadata=_help("USD per instance-hour, spot (g4dn.12xlarge)", ge=0)
    )
    price_ondemand_per_hour: float = field(default=3.912, metadata=_help("USD per instance-hour, on-demand", ge=0))
    mechanics: MechanicsConfig = field(default_factory=MechanicsConfig)


@dataclass
class AvailabilityEventConfig:
    """One event of an availability trace."""

    at_s: float = field(default=MISSING, metadata=_help("trace seconds", ge=0, le=MAX_TRACE_S))
    op: str = field(default=MISSING, metadata=_help("add, remove, tpt (target throughput change) or end"))
    instances: list[str] = field(default_factory=list, metadata=_help("instance names added or removed"))
    ondemand: bool = field(default=False, metadata=_help("the added instances are on-demand (priced so)"))
    required_tpt: float | None = field(default=None, metadata=_help("new target throughput (op tpt)", gt=0))


@dataclass
class RequestsConfig:
    """The LLM request stream of a SpotServe trace."""

    rate_rps: float | None = field(
        default=None, metadata=_help("mean arrival rate; null: the model's request_rate_rps", gt=0)
    )
    rates_per_minute: list[float] = field(
        default_factory=list, metadata=_help("a fluctuating rate, one value per minute (workload traces)", ge=0)
    )
    distribution: str = field(default="gamma", metadata=_help("gamma or poisson inter-arrival times"))
    cv: float = field(default=1.0, metadata=_help("coefficient of variation of inter-arrival times (gamma)", gt=0))
    input_len: int | None = field(default=None, metadata=_help("prompt tokens; null: the model's", ge=1))
    output_len: int | None = field(default=None, metadata=_help("generated tokens; null: the model's", ge=1))
    path: str | None = field(default=None, metadata=_help("replay an artifact id,arrival_s,input_len,offset file"))


# --------------------------------------------------------------------------- trace


@dataclass
class TraceConfig:
    name: str = field(default=MISSING, metadata=_help("trace name, e.g. 3to24qps or fixed_10qps"))
    low_qps: float = field(default=1.0, metadata=_help("lowest per-second arrival rate of the diurnal shape", ge=0))
    high_qps: float = field(default=8.0, metadata=_help("highest per-second arrival rate of the diurnal shape", gt=0))
    duration_s: float = field(default=347.0, metadata=_help("trace length in seconds", gt=0, le=MAX_TRACE_S))
    shape: str = field(default="diurnal", metadata=_help("diurnal (low start, dip, mid peak, decline) or constant"))
    suggested_workers: int = field(default=4, metadata=_help("GPU workers used when hostfile.workers is null", ge=1))
    path: str | None = field(default=None, metadata=_help("replay an artifact arrival_ms,prompt_index file instead"))
    availability: list[AvailabilityEventConfig] = field(
        default_factory=list, metadata=_help("SpotServe: instance add/remove events")
    )
    availability_path: str | None = field(
        default=None, metadata=_help("SpotServe: read an artifact JSON-lines trace or g4dn.csv instead")
    )
    availability_window_s: list[float] = field(
        default_factory=list,
        metadata=_help("SpotServe: [start_s, end_s] of g4dn.csv to replay (empty: all of it)", ge=0),
    )
    requests: RequestsConfig = field(default_factory=RequestsConfig, metadata=_help("SpotServe: the request stream"))


# --------------------------------------------------------------------------- approach


@dataclass
class ApproachConfig:
    name: str = field(
        default=MISSING,
        metadata=_help(
            "diffserve, all_light, all_heavy, static, proteus; spotserve, reparallelization, rerouting; "
            "with plugin: your approach's label"
        ),
    )
    plugin: str | None = field(
        default=None,
        metadata=_help(
            "an approach from your own package, module:Class (a subclass of the system's approach base; "
            "docs/extending.md); null: the registered approach `name`"
        ),
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata=_help("settings of a plugin approach, read by it as self.config.options")
    )
    period_s: float = field(default=5.0, metadata=_help("seconds between two plans of the controller", gt=0))
    light_batch: int | None = field(
        default=None, metadata=_help("fixed light batch (null: the approach decides)", ge=1)
    )
    heavy_batch: int | None = field(
        default=None, metadata=_help("fixed heavy batch (null: the approach decides)", ge=1)
    )
    threshold: float | None = field(
        default=None, metadata=_help("fixed threshold (null: the approach decides)", ge=0, le=1)
    )
    light_workers: int | None = field(
        default=None, metadata=_help("static: light worker count (null: from light_share)", ge=0)
    )
    heavy_workers: int | None = field(default=None, metadata=_help("static: heavy worker count (null: the rest)", ge=0))
    heavy_share: float | None = field(
        default=None,
        metadata=_help(
            "proteus: share of queries sent to the heavy model at random (null: follows the load)", ge=0, le=1
        ),
    )
    demand: str = field(
        default="ewma", metadata=_help("diffserve demand estimator: ewma (arrival rate) or inflight (artifact)")
    )
    ewma_alpha: float = field(
        default=0.3226, metadata=_help("weight of the newest demand sample (pandas com=2.1)", gt=0, le=1)
    )
    demand_factor: float = field(
        default=1.0, metadata=_help("multiplier on the estimated demand (artifact: 1.2)", gt=0)
    )
    threshold_grid: int | None = field(
        default=None,
        metadata=_help(
            "threshold points on [0, 1], f(t) interpolated between the table's points (null: the f(t) table's own points)",
            ge=2,
        ),
    )
    batch_sizes: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32], metadata=_help("allowed max batch sizes", ge=1)
    )
    queueing: str = field(
        default="capacity",
        metadata=_help(
            "diffserve's queueing delay in the SLO budget: capacity (backlog / the tier's planned capacity), "
            "artifact (smoothed backlog / the tier's smoothed in-flight count, the artifact's Little's law), none"
        ),
    )


# --------------------------------------------------------------------------- hostfile


@dataclass
class SshConfig:
    port: int = field(default=22, metadata=_help("sshd port", ge=1, le=65535))
    user: str | None = field(default=None, metadata=_help("login user; null: the user running the orchestrator"))
    key_file: str | None = field(default=None, metadata=_help("private key file (key-based authentication only)"))
    known_hosts: str = field(
        default="~/.ssh/known_hosts", metadata=_help("known_hosts file: a host whose key is not in it is refused")
    )
    accept_new: bool = field(
        default=False,
        metadata=_help("add the key of a host not yet in known_hosts (OpenSSH's accept-new); a changed key is refused"),
    )
    connect_timeout_s: float = field(default=5.0, metadata=_help("seconds to wait for the SSH connection", gt=0))
    keepalive_s: float = field(default=1.0, metadata=_help("SSH keepalive interval", gt=0))
    user_timeout_ms: int = field(
        default=3000, metadata=_help("TCP_USER_TIMEOUT: a silent host is lost after this", ge=1)
    )


@dataclass
class HostConfig:
    name: str = field(default=MISSING, metadata=_help("host name used in logs and the run directory"))
    address: str = field(default="127.0.0.1", metadata=_help("address the roles on this host bind and advertise"))
    bind_address: str | None = field(default=None, metadata=_help("bind here instead of address (e.g. 0.0.0.0)"))
    ssh: SshConfig | None = field(default=None, metadata=_help("null: a local host, roles are local processes"))
    python: str | None = field(
        default=None,
        metadata=_help("interpreter of the environment holding this project; null: the orchestrator's own"),
    )
    workdir: str | None = field(default=None, metadata=_help("where the roles' files live on the host"))
    gpus: list[int] = field(default_factory=list, metadata=_help("GPU indices of this host", ge=0))
    workers_per_gpu: int = field(
        default=1, metadata=_help("workers per GPU (simulated execution may share a GPU)", ge=1)
    )
    roles: list[str] = field(default_factory=list, metadata=_help("roles placed on this host"))


@dataclass
class HostfileConfig:
    name: str = field(default=MISSING)
    workers: int | None = field(
        default=None, metadata=_help("GPU workers besides the sink; null: trace.suggested_workers", ge=1)
    )
    base_port: int = field(
        default=50050, metadata=_help("first port; roles take consecutive ports per address", ge=1024, le=65535)
    )
    ports: str = field(
        default="auto",
        metadata=_help(
            "auto: from base_port up, the first range no other run on this machine holds; fixed: base_port or fail"
        ),
    )
    hosts: list[HostConfig] = field(default_factory=list)


# --------------------------------------------------------------------------- execution


@dataclass
class ExecutionConfig:
    mode: str = field(
        default="simulated", metadata=_help("simulated (sleep the profiled latency) or real (run models)")
    )
    device: str = field(default="auto", metadata=_help("real execution: cuda, cpu or auto"))
    save_images: bool = field(default=False, metadata=_help("real execution: save served images in the run directory"))
    warmup: bool = field(default=True, metadata=_help("real execution: one warm-up generation before ready"))
    threads: int = field(
        default=1, metadata=_help("real execution on a CPU: torch threads per worker (0: torch's default)", ge=0)
    )
    weights_dir: str | None = field(
        default=None,
        metadata=_help(
            "SpotServe real execution: folder of the model's weight files on each host (written once, seeded, "
            "when missing); null: ~/.cache/servelab/weights"
        ),
    )
    worker_processes: str = field(
        default="instance",
        metadata=_help(
            "SpotServe, simulated execution: instance (the GPUs of one instance share a process) or gpu "
            "(one process a GPU, as real execution always runs)"
        ),
    )


@dataclass
class QualityConfig:
    """Measured FID of the served images against a reference image folder."""

    reference: str | None = field(
        default=None, metadata=_help("folder of reference images; set: FID at the end of a real run")
    )
    extractor: str = field(
        default="inception", metadata=_help("inception (TorchScript or torchvision weights), small_cnn, or module")
    )
    extractor_path: str | None = field(default=None, metadata=_help("inception weights file; small_cnn state dict"))
    extractor_target: str | None = field(
        default=None, metadata=_help("module: 'package.module:factory' returning a torch module with num_features")
    )
    window_s: float = field(
        default=60.0, metadata=_help("FID per window of this many trace seconds (by completion)", gt=0)
    )
    min_images: int = field(
        default=10, metadata=_help("a window with fewer served images is marked, not computed", ge=2)
    )
    image_size: int = field(default=299, metadata=_help("images are resized to this before the extractor", ge=8))
    batch_size: int = field(default=64, metadata=_help("images per extractor batch", ge=1))


# --------------------------------------------------------------------------- run mechanics


@dataclass
class TrackingConfig:
    uri: str = field(default=MISSING, metadata=_help("MLflow tracking URI (sqlite:///... by default)"))
    experiment: str = field(default="servelab", metadata=_help("MLflow experiment name"))
    enabled: bool = field(default=True, metadata=_help("log the run to MLflow"))


@dataclass
class RunConfig:
    drain_slo_factor: float = field(
        default=2.0, metadata=_help("after the last arrival, wait up to this many SLOs", ge=0)
    )
    heartbeat_s: float = field(default=1.0, metadata=_help("controller heartbeat period (trace seconds)", gt=0))
    evict_after_missed: int = field(
        default=3, metadata=_help("a worker is evicted after this many heartbeats in a row without an answer", ge=1)
    )
    heartbeat_timeout_s: float = field(
        default=1.0, metadata=_help("wall seconds a heartbeat may take before it counts as missed", gt=0)
    )
    rpc_timeout_s: float = field(default=2.0, metadata=_help("deadline of every RPC, wall seconds", gt=0))
    ready_timeout_s: float = field(default=60.0, metadata=_help("wall seconds a role may take to become ready", gt=0))
    stop_timeout_s: float = field(default=5.0, metadata=_help("wall seconds between TERM and KILL at teardown", gt=0))
    silence_s: float = field(
        default=5.0,
        metadata=_help(
            "wall seconds an essential role (controller, load balancer, sink, client) may leave its health check "
            "unanswered before the run stops (a hung or stopped process)",
            gt=0,
        ),
    )
    lease_s: float = field(
        default=6.0,
        metadata=_help(
            "roles stop by themselves when the orchestrator has not renewed their lease for this long", ge=2
        ),
    )
    start_lead_s: float = field(default=0.5, metadata=_help("wall seconds between Start and trace time 0", ge=0))
    drop_factor: float = field(
        default=1.0, metadata=_help("workers drop a query whose projected latency exceeds this many SLOs", gt=0)
    )
    progress: bool = field(default=True, metadata=_help("print a live progress line"))
    journal_sync_s: float = field(
        default=2.0,
        metadata=_help("the client's and the sink's journals reach the disk (fsync) this often, wall seconds", gt=0),
    )
    send_lag_limit_s: float = field(
        default=1.0,
        metadata=_help("a run whose client sent queries this many trace seconds late (p99) fell behind", gt=0),
    )


@dataclass
class MetricsConfig:
    window_s: float = field(
        default=5.0, metadata=_help("window of the windowed SLO ratio and FID series, trace seconds", gt=0)
    )
    smooth: int = field(
        default=5, metadata=_help("windows in the moving average of the artifact-style SLO ratio", ge=1)
    )


@dataclass
class LimitsConfig:
    """What a run may ask of this machine and its hosts, checked before anything starts
    (orchestrator/config/limits.py); raise one to run bigger on purpose."""

    processes_per_core: float = field(
        default=16.0, metadata=_help("wall clock: role processes a host may run per CPU core", gt=0)
    )
    workers: int = field(default=4096, metadata=_help("workers of one run, on either clock", ge=1))
    instances: int = field(default=1024, metadata=_help("SpotServe: instances an availability trace may add", ge=1))
    queries: int = field(
        default=20_000_000, metadata=_help("queries (trace lines, expected arrivals) of one run", ge=1)
    )
    windows: int = field(
        default=1_000_000,
        metadata=_help("windows of a windowed series (trace length / metrics or quality window_s)", ge=1),
    )
    wall_hours: float = field(
        default=24.0, metadata=_help("wall clock: hours the trace may take at time_scale (with its drain)", gt=0)
    )
    memory_fraction: float = field(
        default=0.8,
        metadata=_help(
            "the run's estimated memory may use this fraction of what this machine has available", gt=0, le=1
        ),
    )


@dataclass
class Config:
    system: SystemConfig = field(default_factory=SystemConfig)
    cascade: CascadeConfig | None = None
    model: ModelConfig | None = None
    spot: SpotConfig = field(default_factory=SpotConfig)
    trace: TraceConfig = field(default_factory=TraceConfig)
    approach: ApproachConfig = field(default_factory=ApproachConfig)
    hostfile: HostfileConfig = field(default_factory=HostfileConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    seed: int = field(default=0, metadata=_help("seed of every random draw (trace, confidences)", ge=0))
    time_scale: float = field(
        default=1.0, metadata=_help("wall-clock run goes this many times faster than the trace", gt=0)
    )
    clock: str = field(
        default="wall",
        metadata=_help(
            "wall: the live testbed (processes, gRPC, real time); virtual: the same cores on a discrete-event clock"
        ),
    )
    ablation: int = field(default=0, metadata=_help("SpotServe ablation level 0..4 (Figure 9), cumulative", ge=0, le=4))
    paths: dict[str, Any] = field(default_factory=dict)
    experiment: str | None = field(default=None, metadata=_help("name of the experiment preset, if any"))
