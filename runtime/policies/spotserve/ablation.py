"""SpotServe's ablation levels (the paper's Figure 9), each removing one more feature.

| level | label                     | switched off (cumulative)                                   |
| ----- | ------------------------- | ----------------------------------------------------------- |
| 0     | SpotServe                 | nothing                                                     |
| 1     | - Controller              | adaptive parallelization: tp/pp/batch frozen at the start   |
| 2     | - Migration Planner       | overlap of migration with computation, the scale-out fast   |
|       |                           | path; new replicas wait for the whole migration + 2 starts  |
| 3     | - Interruption Arranger   | KV-cache/progress recovery: interrupted requests restart    |
| 4     | - Device Mapper           | bipartite matching: GPUs take positions in rank order       |

The artifact's script ran level 2 four times (a bug); here every level changes behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.exceptions import ConfigError

LEVELS = (0, 1, 2, 3, 4)
LABELS = ("SpotServe", "- Controller", "- Migration Planner", "- Interruption Arranger", "- Device Mapper")


@dataclass(frozen=True)
class Features:
    adaptive: bool = True  # re-optimise the configuration at every event
    overlap: bool = True  # migration overlaps computation; scale-out keeps old replicas running
    recovery: bool = True  # interrupted requests resume from their last committed token
    matching: bool = True  # maximum-weight device mapping (else rank order)


def features(level: int) -> Features:
    if level not in LEVELS:
        raise ConfigError(f"ablation: unknown level {level} (allowed: 0..4)")
    return Features(adaptive=level < 1, overlap=level < 2, recovery=level < 3, matching=level < 4)
