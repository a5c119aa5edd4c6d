"""`python -m orchestrator.fid --run RUN_DIR --reference FOLDER [options]`: measured FID of a
finished run's served images against a reference image folder, overall and per time window.

The run needs `execution=real execution.save_images=true`. Writes `fid_windows.parquet` and
`fid_measured` (with `fid_measured_images`, `fid_extractor`) into the run's summary.json, next
to the table-based `fid` estimate, and prints both.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from orchestrator.quality.measure import MeasuredFid, measure
from runtime.exceptions import ServelabError
from runtime.schema.diffserve import QualityConfig


def write(run_dir: Path, result: MeasuredFid) -> dict[str, object]:
    result.windows.to_parquet(run_dir / "fid_windows.parquet", index=False)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary.update(
        {
            "fid_measured": result.overall,
            "fid_measured_images": result.images,
            "fid_reference_images": result.reference_images,
            "fid_extractor": result.extractor,
            "fid_windows_too_few": int(result.windows["too_few"].sum()) if len(result.windows) else 0,
        }
    )
    summary_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.fid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run directory (with records.parquet)")
    parser.add_argument("--reference", type=Path, required=True, help="folder of reference images")
    defaults = QualityConfig()
    parser.add_argument("--extractor", default=defaults.extractor, choices=("inception", "small_cnn", "module"))
    parser.add_argument("--extractor-path", default=None, help="inception weights (TorchScript .pt) or a state dict")
    parser.add_argument("--extractor-target", default=None, help="package.module:factory for --extractor module")
    parser.add_argument("--window-s", type=float, default=defaults.window_s)
    parser.add_argument("--min-images", type=int, default=defaults.min_images)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    q = QualityConfig(
        reference=str(args.reference),
        extractor=args.extractor,
        extractor_path=args.extractor_path,
        extractor_target=args.extractor_target,
        window_s=args.window_s,
        min_images=args.min_images,
        image_size=args.image_size,
    )
    records_path = args.run / "records.parquet"
    try:
        if not records_path.exists():
            raise ServelabError(f"--run: {records_path} does not exist (is it a run directory?)")
        result = measure(args.run, pd.read_parquet(records_path), q, args.reference, args.device)
        summary = write(args.run, result)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    estimate = summary.get("fid", math.nan)
    print(
        f"measured FID {result.overall:.3f} over {result.images} images vs {result.reference_images} reference ({q.extractor}); table-based estimate {estimate}"
    )
    print(result.windows.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
