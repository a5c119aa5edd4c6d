"""`python -m orchestrator.profile [system=...] cascade=NAME|model=NAME [overrides] [--batch-sizes 1,2,4,8]
[--repeats 5] [--out DIR]`: measure a system's models on this machine and write a config that
simulates them. The command only parses its options; each system's profiler does the work
(DiffServe: orchestrator/systems/diffserve/profile.py writes `<out>/cascade/<name>_profiled.yaml`;
SpotServe: orchestrator/systems/spotserve/profile.py writes `<out>/model/<name>_profiled.yaml`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.compose import load_plan
from orchestrator.systems.base import ProfileOptions
from runtime.exceptions import ConfigError, ServelabError


def main(argv: list[str] | None = None) -> int:
    from orchestrator.systems import get_system

    parser = argparse.ArgumentParser(prog="python -m orchestrator.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch-sizes",
        default=None,
        help="comma-separated batch sizes (default: diffserve 1,2,4,8; spotserve model.profile_batches)",
    )
    parser.add_argument("--max-tp", type=int, default=None, help="spotserve: profile tensor parallelism up to this")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--curve-prompts", type=int, default=64, help="light images scored for the deferral curve")
    parser.add_argument("--out", type=Path, default=Path("outputs/profiles"))
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. cascade=tiny execution.device=cuda")
    args = parser.parse_intermixed_args(argv)
    try:
        batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")}) if args.batch_sizes else None
        if (batch_sizes is not None and (not batch_sizes or batch_sizes[0] < 1)) or args.repeats < 1:
            raise ConfigError("--batch-sizes and --repeats: positive integers")
        config = load_plan(args.overrides).config
        options = ProfileOptions(batch_sizes, args.repeats, args.warmup, args.curve_prompts, args.max_tp, args.out)
        message = get_system(config.system.name).profile(config, options)
    except (ServelabError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
