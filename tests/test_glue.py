"""What the roles (wall clock) and the engine (virtual clock) both do lives once: the tick
cadence, building a controller core for a run, and stamping a request's record. These tests
hold the shared pieces to their contract and fail if a clock grows its own copy again."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from runtime.clock import Cadence
from runtime.cores.spotserve.pool import Lease
from runtime.cores.spotserve.replica import Finished, Interrupted, stamp_leased, stamp_outcome
from runtime.policies.spotserve.timing import BatchTiming, Run
from runtime.protos import servelab_pb2 as pb
from runtime.query import QUERY_FIELDS, STAGE_FIELDS, Notice, Query, Stage, float32, from_pb, notice_to_pb, to_pb
from tests.conftest import ROOT

SHELLS = [*sorted((ROOT / "runtime" / "roles").rglob("*.py")), *sorted((ROOT / "runtime" / "engine").glob("*.py"))]


def test_cadence_keeps_the_grid_and_counts_what_it_skips() -> None:
    c = Cadence(0.5)
    assert c.due == 0.0 and c.take(0.0) == 0.5  # the start's tick
    assert [c.take(t) for t in (0.5, 1.0, 1.5)] == [1.0, 1.5, 2.0] and c.skipped == 0
    assert c.take(2.01) == 2.5  # a little late: the next tick stays on the grid
    assert c.take(4.2) == 4.5 and c.skipped == 3  # 2.5, 3.0, 3.5 were past: skipped, 4.0 taken at 4.2
    early = Cadence(0.5)
    early.take(0.0)
    assert early.take(0.5 - 1e-9) == 1.0  # a wait that ended a hair early is still that tick, once
    ticks = Cadence(0.2)
    ticks.take(0.0)
    times = [0.2]
    for _ in range(999):
        times.append(ticks.take(times[-1]))
    assert times[-1] == pytest.approx(200.0, abs=1e-9) and times[500] == 0.2 * 501  # k x period: no drift


def _lease(start_step: int) -> Lease:
    timing = BatchTiming((0.1,), (0.01,), (0.0,))
    return Lease(7, 3, (11, 12), start_step, False, Run(1.0, 2, start_step, 8, timing))


def test_stamps_write_the_fields_both_clocks_record() -> None:
    queries = [Query(id=11), Query(id=12)]
    lease = _lease(start_step=5)
    stamp_leased(queries, lease, {12: 2})
    assert [(q.restarts, q.tokens_done) for q in queries] == [(0, 5), (2, 5)]  # resumes from its KV cache
    stamp_outcome(queries, Interrupted(lease, 1.0, 1.5, 6), "worker-0", 3, output_len=8)
    assert [(q.tokens_done, q.replica) for q in queries] == [(6, 0), (6, 0)]  # cut: no replica served it
    stamp_outcome(queries, Finished(lease, 2.0, 2.4), "worker-4", 4, output_len=8)
    assert [(q.tokens_done, q.replica) for q in queries] == [(8, 4), (8, 4)]
    stages = [(s.worker, s.started_at, s.finished_at, s.batch_size) for s in queries[0].stages]
    assert stages == [("worker-0", 1.0, 1.5, 2), ("worker-4", 2.0, 2.4, 2)]


def _offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Attribute) and sub.attr in {"tokens_done", "restarts"}:
                        found.append(f"{path.name}:{node.lineno} stamps .{sub.attr}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "of":
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id in {"ControllerCore", "SpotControllerCore"}:
                found.append(f"{path.name}:{node.lineno} builds a controller core itself ({owner.id}.of)")
        if isinstance(node, ast.ImportFrom) and any(a.name == "make_approach" for a in node.names):
            found.append(f"{path.name}:{node.lineno} makes an approach itself")
    return found


@pytest.mark.parametrize("path", SHELLS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_clock_keeps_its_own_copy_of_the_glue(path: Path) -> None:
    assert _offences(path) == []


def test_the_check_finds_a_copy(tmp_path: Path) -> None:
    copy = tmp_path / "copy.py"
    copy.write_text(
        "from runtime.policies.diffserve.registry import make_approach\n"
        "def f(q, lease):\n    q.tokens_done = lease.start_step\n    return ControllerCore.of(1, 2)\n"
    )
    assert len(_offences(copy)) == 3


def test_a_query_crosses_the_wire_unchanged() -> None:
    """The cores' plain query has the wire's fields, one for one, and a round trip through the
    protobuf message keeps every value (confidence and threshold are float32 on both sides)."""
    assert set(QUERY_FIELDS) == {f.name for f in pb.Query.DESCRIPTOR.fields}
    assert set(STAGE_FIELDS) == {f.name for f in pb.Stage.DESCRIPTOR.fields}
    assert set(Notice.__dataclass_fields__) == {f.name for f in pb.Notice.DESCRIPTOR.fields}
    rng = random.Random(7)
    for i in range(200):
        q = Query(
            id=rng.randrange(-5, 1 << 40),
            prompt_index=rng.randrange(1 << 20),
            sent_at=rng.random() * 1e4,
            admitted_at=rng.random(),
            scored=bool(i % 2),
            confidence=float32(rng.random()),
            threshold=float32(rng.random()),
            dropped=bool(i % 3 == 0),
            drop_reason=rng.choice(["", "slo_unreachable"]),
            prompt=rng.choice(["", "a cat ☕"]),
            image_path=rng.choice(["", "/x/y.png"]),
            note=rng.choice(["", "kept light"]),
            tokens_done=rng.randrange(100),
            restarts=rng.randrange(3),
            replica=rng.randrange(8),
            output_len=rng.randrange(1, 64),
            elapsed_s=rng.random(),
            stages=[
                Stage(
                    rng.choice([pb.LIGHT, pb.HEAVY]), f"w{k}", rng.random(), rng.random(), rng.random(), k, bool(k % 2)
                )
                for k in range(rng.randrange(4))
            ],
        )
        message = to_pb(q)
        assert from_pb(pb.Query.FromString(message.SerializeToString())) == q
    assert float32(0.1) != 0.1 and to_pb(Query(confidence=0.1)).confidence == float32(0.1)
    assert notice_to_pb(Notice(3, True, "no_worker", "")) == pb.Notice(id=3, dropped=True, drop_reason="no_worker")
