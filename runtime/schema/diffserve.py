"""DiffServe's schema: its cascade, its trace and approach sections, and the FID measurement
(`DiffServeConfig`, named by its registry entry; the shared part is runtime/schema/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from runtime.schema import ApproachConfig, Config, TraceConfig, described


@dataclass
class ProfileConfig:
    """Profiled latency of one model per batch size (milliseconds per batch)."""

    batch_sizes: list[int] = field(default_factory=list, metadata=described("profiled batch sizes, ascending", ge=1))
    latency_ms: list[float] = field(
        default_factory=list, metadata=described("latency of one batch of each size, ms", ge=0)
    )
    source: str = field(default="", metadata=described("where the numbers come from"))


@dataclass
class DiffusionModelConfig:
    """One diffusion model of a cascade (the light or the heavy one)."""

    name: str = field(default=MISSING, metadata=described("short model name used in records and figures"))
    model_id: str = field(default="", metadata=described("hub id or local directory of the pipeline"))
    pipeline: str = field(default="auto", metadata=described("diffusers pipeline class name, or auto"))
    dtype: str = field(default="float16", metadata=described("float16, bfloat16 or float32"))
    scheduler: str | None = field(
        default=None, metadata=described("diffusers scheduler class name; null keeps the pipeline's")
    )
    scheduler_options: dict[str, Any] = field(
        default_factory=dict, metadata=described("kwargs for the scheduler's from_config")
    )
    unet_weights: str | None = field(
        default=None, metadata=described("hub id/file of a replacement UNet (SDXL-Lightning)")
    )
    steps: int = field(default=1, metadata=described("denoising steps", ge=1))
    guidance: float = field(default=0.0, metadata=described("classifier-free guidance scale", ge=0))
    resolution: int = field(default=512, metadata=described("image height and width in pixels", ge=8))
    profile: ProfileConfig = field(default_factory=ProfileConfig, metadata=described("latency per batch size"))
    unet: dict[str, Any] = field(
        default_factory=dict,
        metadata=described(
            "the UNet's published shape (UNet2DConditionModel arguments, conf/unet/): profiled with random weights"
        ),
    )


@dataclass
class CurveConfig:
    """A piecewise-linear curve given by points (x ascending), here or in a table file."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    source: str = field(default="", metadata=described("where the points come from"))
    table: str | None = field(
        default=None,
        metadata=described(
            "a CSV file of the points (two columns, x then y; '# source: ...' names their source), relative to "
            "conf/tables/ or absolute; read when the run resolves, so a long table is not composed with every config"
        ),
    )


@dataclass
class DiscriminatorConfig:
    latency_ms: float = field(
        default=20.0, metadata=described("simulated discriminator time per light batch, ms", ge=0)
    )
    mode: str = field(
        default="live",
        metadata=described("real execution: live (score each image) or table (the per-prompt confidence table)"),
    )
    weights: str | None = field(
        default=None, metadata=described("state-dict file (.safetensors or torch state dict); tiny:discriminator")
    )
    architecture: str = field(default="small_cnn", metadata=described("small_cnn or efficientnet_v2_s"))
    image_size: int = field(default=224, metadata=described("input size the discriminator scores at", ge=8))


@dataclass
class StaticPlanConfig:
    """The fixed cascade plan that approach=static uses (the artifact's policy 8)."""

    threshold: float = field(default=0.0, metadata=described("confidence threshold", ge=0, le=1))
    light_batch: int = field(default=1, metadata=described("max batch of light workers", ge=1))
    heavy_batch: int = field(default=1, metadata=described("max batch of heavy workers", ge=1))
    light_share: float = field(
        default=0.25, metadata=described("fraction of GPU workers that run the light model", gt=0, lt=1)
    )
    source: str = field(default="")


@dataclass
class CascadeConfig:
    name: str = field(default=MISSING, metadata=described("sdturbo, sdxs, sdxlltn or tiny"))
    slo_s: float = field(
        default=MISSING, metadata=described("the one latency SLO of this cascade, seconds (trace time)", gt=0)
    )
    light: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    heavy: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    deferral_curve: CurveConfig = field(
        default_factory=CurveConfig,
        metadata=described("f(t): fraction of prompts whose confidence is below threshold t"),
    )
    fid_table: CurveConfig = field(
        default_factory=CurveConfig,
        metadata=described("FID against the fraction of queries served by the light model"),
    )
    fid_artifact_offset: float = field(
        default=0.0,
        metadata=described(
            "the artifact plotting script's hand-tuned shift of x in its FID recipe (fid_artifact_recipe)"
        ),
    )
    static: StaticPlanConfig = field(default_factory=StaticPlanConfig)
    num_prompts: int = field(
        default=5000, metadata=described("prompt indices 0..num_prompts-1 have a confidence", ge=1)
    )
    confidence_path: str | None = field(
        default=None,
        metadata=described("read per-prompt confidence from an artifact dist_*.txt file instead of drawing it"),
    )
    prompts_path: str | None = field(
        default=None, metadata=described("prompt text file, one per line (real execution)")
    )


@dataclass
class QualityConfig:
    """Measured FID of the served images against a reference image folder."""

    reference: str | None = field(
        default=None, metadata=described("folder of reference images; set: FID at the end of a real run")
    )
    extractor: str = field(
        default="inception", metadata=described("inception (TorchScript or torchvision weights), small_cnn, or module")
    )
    extractor_path: str | None = field(default=None, metadata=described("inception weights file; small_cnn state dict"))
    extractor_target: str | None = field(
        default=None, metadata=described("module: 'package.module:factory' returning a torch module with num_features")
    )
    window_s: float = field(
        default=60.0, metadata=described("FID per window of this many trace seconds (by completion)", gt=0)
    )
    min_images: int = field(
        default=10, metadata=described("a window with fewer served images is marked, not computed", ge=2)
    )
    image_size: int = field(default=299, metadata=described("images are resized to this before the extractor", ge=8))
    batch_size: int = field(default=64, metadata=described("images per extractor batch", ge=1))


@dataclass
class DiffServeTraceConfig(TraceConfig):
    """A diurnal (or constant) arrival rate, or an artifact arrival file."""

    low_qps: float = field(default=1.0, metadata=described("lowest per-second arrival rate of the diurnal shape", ge=0))
    high_qps: float = field(
        default=8.0, metadata=described("highest per-second arrival rate of the diurnal shape", gt=0)
    )
    shape: str = field(default="diurnal", metadata=described("diurnal (low start, dip, mid peak, decline) or constant"))
    path: str | None = field(
        default=None, metadata=described("replay an artifact arrival_ms,prompt_index file instead")
    )


@dataclass
class DiffServeApproachConfig(ApproachConfig):
    period_s: float = field(default=5.0, metadata=described("seconds between two plans of the controller", gt=0))
    light_batch: int | None = field(
        default=None, metadata=described("fixed light batch (null: the approach decides)", ge=1)
    )
    heavy_batch: int | None = field(
        default=None, metadata=described("fixed heavy batch (null: the approach decides)", ge=1)
    )
    threshold: float | None = field(
        default=None, metadata=described("fixed threshold (null: the approach decides)", ge=0, le=1)
    )
    light_workers: int | None = field(
        default=None, metadata=described("static: light worker count (null: from light_share)", ge=0)
    )
    heavy_workers: int | None = field(
        default=None, metadata=described("static: heavy worker count (null: the rest)", ge=0)
    )
    heavy_share: float | None = field(
        default=None,
        metadata=described(
            "proteus: share of queries sent to the heavy model at random (null: follows the load)", ge=0, le=1
        ),
    )
    demand: str = field(
        default="ewma", metadata=described("diffserve demand estimator: ewma (arrival rate) or inflight (artifact)")
    )
    ewma_alpha: float = field(
        default=0.3226, metadata=described("weight of the newest demand sample (pandas com=2.1)", gt=0, le=1)
    )
    demand_factor: float = field(
        default=1.0, metadata=described("multiplier on the estimated demand (artifact: 1.2)", gt=0)
    )
    threshold_grid: int | None = field(
        default=None,
        metadata=described(
            "threshold points on [0, 1], f(t) interpolated between the table's points (null: the f(t) table's own points)",
            ge=2,
        ),
    )
    batch_sizes: list[int] = field(
        default_factory=lambda: [1, 2, 4, 8, 16, 32], metadata=described("allowed max batch sizes", ge=1)
    )
    queueing: str = field(
        default="capacity",
        metadata=described(
            "diffserve's queueing delay in the SLO budget: capacity (backlog / the tier's planned capacity), "
            "artifact (smoothed backlog / the tier's smoothed in-flight count, the artifact's Little's law), none"
        ),
    )


@dataclass
class DiffServeConfig(Config):
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    trace: DiffServeTraceConfig = field(default_factory=DiffServeTraceConfig)
    approach: DiffServeApproachConfig = field(default_factory=DiffServeApproachConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
