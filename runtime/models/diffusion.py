"""Loading a cascade's diffusion pipelines: a hub id, a local directory, or `tiny:<kind>`.

One path for all: `DiffusionPipeline.from_pretrained` (or the configured pipeline class) on a
directory or id, then the configured scheduler really replaces the pipeline's own (the
artifact asked for DDIM and silently kept PNDM), an optional replacement UNet (SDXL-Lightning),
the dtype and the device. Any failure is a one-line `ModelLoadError` naming the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.exceptions import ServelabError
from runtime.models.tiny import ensure_pipeline
from runtime.schema.diffserve import DiffusionModelConfig

TINY_PREFIX = "tiny:"


class ModelLoadError(ServelabError):
    """A model could not be loaded (absent offline, out of memory, a bad config value)."""


def _first_line(err: BaseException) -> str:
    """The error's first line, whole (a message cut mid-sentence helps nobody)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def resolve_source(model: DiffusionModelConfig, cache_dir: Path) -> str:
    """The id or directory `from_pretrained` gets; tiny models are built into `cache_dir`."""
    if model.model_id.startswith(TINY_PREFIX):
        kind = model.model_id[len(TINY_PREFIX) :]
        if kind not in ("light", "heavy"):
            raise ModelLoadError(
                f"model {model.name}: unknown tiny model {model.model_id!r} (allowed: tiny:light, tiny:heavy)"
            )
        return str(ensure_pipeline(kind, cache_dir / f"tiny-{kind}"))
    if not model.model_id:
        raise ModelLoadError(f"model {model.name}: model_id is empty (a hub id or a local directory)")
    return model.model_id


def torch_dtype(name: str, device: str) -> Any:
    import torch

    if device == "cpu":
        return torch.float32  # half precision on a CPU is slow where it works at all
    try:
        return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]
    except KeyError:
        raise ModelLoadError(f"dtype: unknown {name!r} (allowed: float16, bfloat16, float32)") from None


def quiet_libraries() -> None:
    """No download/loading progress bars and no advisory warnings in the roles' logs."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def load_pipeline(model: DiffusionModelConfig, tier: str, device: str, cache_dir: Path) -> Any:
    import diffusers
    import torch

    quiet_libraries()
    where = f"cascade.{tier} ({model.name})"
    source = resolve_source(model, cache_dir)
    cls = diffusers.DiffusionPipeline if model.pipeline == "auto" else getattr(diffusers, model.pipeline, None)
    if cls is None:
        raise ModelLoadError(f"{where}: unknown pipeline class {model.pipeline!r}")
    try:
        pipe = cls.from_pretrained(source, dtype=torch_dtype(model.dtype, device))
        if model.unet_weights:
            _replace_unet(pipe, model.unet_weights)
        if model.scheduler:
            scheduler_cls = getattr(diffusers, model.scheduler, None)
            if scheduler_cls is None:
                raise ModelLoadError(f"{where}: unknown scheduler {model.scheduler!r}")
            pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config, **dict(model.scheduler_options))
        pipe = pipe.to(device)
    except ModelLoadError:
        raise
    except torch.cuda.OutOfMemoryError as err:
        raise ModelLoadError(f"{where}: out of GPU memory loading {source!r} ({_first_line(err)})") from None
    except Exception as err:  # missing offline, a bad directory, a broken file: all one line
        raise ModelLoadError(f"{where}: cannot load {source!r}: {_first_line(err)}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _replace_unet(pipe: Any, spec: str) -> None:
    """`repo/name/file.safetensors` on the hub, or a local file: the UNet's new weights."""
    from safetensors.torch import load_file

    path = Path(spec)
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        repo, _, filename = spec.rpartition("/")
        path = Path(hf_hub_download(repo, filename))
    pipe.unet.load_state_dict(load_file(str(path)))


def scheduler_name(pipe: Any) -> str:
    return type(pipe.scheduler).__name__


def generate(pipe: Any, model: DiffusionModelConfig, prompts: list[str], generators: Any) -> Any:
    """One batch through `pipe` with the model's steps, guidance and resolution, images as
    tensors: the call the executor, the profiler and the deferral-curve measurement share."""
    return pipe(
        prompt=prompts,
        num_inference_steps=model.steps,
        guidance_scale=model.guidance,
        height=model.resolution,
        width=model.resolution,
        generator=generators,
        output_type="pt",
    )
