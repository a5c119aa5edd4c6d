"""FID of a run's served images against a reference folder, overall and per time window.

Served images are the records' `image_path` of completed queries (workers save them with
`execution.save_images=true`); windows group them by completion time (the client's notice).
A window with fewer than `quality.min_images` images gets no FID (NaN) and `too_few=True`:
marked, not silently computed from a handful of samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator.quality.extractors import Extractor, build_extractor
from orchestrator.quality.frechet import fid
from runtime.exceptions import ConfigError
from runtime.records import Outcome
from runtime.schema.diffserve import QualityConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class MeasuredFid:
    overall: float
    images: int
    reference_images: int
    extractor: str
    windows: pd.DataFrame  # window_start_s, window_end_s, images, fid, too_few


def reference_paths(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"quality.reference: no such folder: {folder}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(paths) < 2:
        raise ConfigError(f"quality.reference: {folder} holds {len(paths)} images; FID needs at least 2")
    return paths


def features(paths: list[Path], extract: Extractor, size: int, batch: int) -> np.ndarray:
    import torch
    from PIL import Image

    out = []
    for i in range(0, len(paths), batch):
        tensors = []
        for p in paths[i : i + batch]:
            with Image.open(p) as img:
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            tensors.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1))
        out.append(extract(torch.stack(tensors)))
    return np.concatenate(out) if out else np.zeros((0, 1))


def served_images(run_dir: Path, records: pd.DataFrame) -> pd.DataFrame:
    done = records["outcome"].isin([o.value for o in Outcome if o.is_completed])
    has = records["image_path"].fillna("") != "" if "image_path" in records else pd.Series(False, index=records.index)
    served = records.loc[done & has, ["query_id", "notice_at", "image_path", "path"]].copy()
    served["file"] = [run_dir / p for p in served["image_path"]]
    return served[[f.exists() for f in served["file"]]]


def measure(
    run_dir: Path, records: pd.DataFrame, q: QualityConfig, reference: str | Path, device: str = "cpu"
) -> MeasuredFid:
    extract = build_extractor(q, device)
    ref = features(reference_paths(reference), extract, q.image_size, q.batch_size)
    served = served_images(run_dir, records)
    feats = features(list(served["file"]), extract, q.image_size, q.batch_size)
    overall = fid(feats, ref) if len(feats) >= q.min_images else math.nan
    rows: list[dict[str, Any]] = []
    if len(served):
        window = np.floor(served["notice_at"].to_numpy() / q.window_s).astype(int)
        for w in range(int(window.max()) + 1):
            members = feats[window == w]
            too_few = len(members) < q.min_images
            rows.append(
                {
                    "window_start_s": w * q.window_s,
                    "window_end_s": (w + 1) * q.window_s,
                    "images": len(members),
                    "fid": math.nan if too_few else fid(members, ref),
                    "too_few": too_few,
                }
            )
    windows = pd.DataFrame(rows, columns=["window_start_s", "window_end_s", "images", "fid", "too_few"])
    return MeasuredFid(overall, len(feats), len(ref), q.extractor, windows)
