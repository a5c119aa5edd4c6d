"""The vocabulary of a query's record: which tier served it and how it ended.

Every metric is computed from records that use these names (see docs/metrics.md), so a
metric asks the enum (`Outcome.is_violation`) instead of repeating lists of strings.
"""

from __future__ import annotations

from enum import Enum


class Tier(str, Enum):
    """Which model of the cascade a worker runs, or a query was served by."""

    LIGHT = "light"  # the fast model; every query starts here when light workers exist
    HEAVY = "heavy"  # the slow, better model; deferred queries (and all of all_heavy)
    IDLE = "idle"  # a worker with no tier: the plan needs fewer workers than exist


# The members again as module constants, for the per-query paths: on Python 3.11 a member read
# off its class (`Tier.LIGHT`) is an unspecialised class attribute lookup, 60 ns, and a global
# 5 ns (measured 2026-12-06); the engine reads several a query.
LIGHT, HEAVY, IDLE = Tier.LIGHT, Tier.HEAVY, Tier.IDLE


class Outcome(str, Enum):
    """How a query sent by the client ended, decided on the client's clock."""

    COMPLETED_ON_TIME = "completed_on_time"  # completion notice within the SLO
    COMPLETED_LATE = "completed_late"  # completion notice after the SLO
    DROPPED = "dropped"  # a role gave up on it; drop_reason says which and why
    UNFINISHED = "unfinished"  # no notice by the end of the drain

    @property
    def is_violation(self) -> bool:
        return self is not Outcome.COMPLETED_ON_TIME

    @property
    def is_completed(self) -> bool:
        return self in (Outcome.COMPLETED_ON_TIME, Outcome.COMPLETED_LATE)


class DropReason(str, Enum):
    """Why a query was dropped."""

    SLO_UNREACHABLE = "slo_unreachable"  # a worker projected it past drop_factor x SLO
    NO_WORKER = "no_worker"  # the load balancer had no worker of the needed tier
    WORKER_UNREACHABLE = "worker_unreachable"  # every worker tried failed to take it
    SUBMIT_FAILED = "submit_failed"  # the client's call to the load balancer failed and no notice came
    EXECUTION_FAILED = "execution_failed"  # the model raised while running its batch

    @property
    def is_loss(self) -> bool:
        """The testbed lost the query (a call or a model failed); the other reasons are the
        approach's own decisions (its drop rule, a tier its plan left without workers)."""
        return self in (DropReason.WORKER_UNREACHABLE, DropReason.SUBMIT_FAILED, DropReason.EXECUTION_FAILED)
