"""The sharded GPT (runtime/models/gpt.py): greedy decoding gives the same tokens on every
(tp, pp) configuration, across real processes talking gloo, and a request interrupted under one
configuration resumes under another from its migrated KV cache with exactly the tokens of an
uninterrupted run. These are the tests that prove the tensor and pipeline split and the KV
migration right."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from runtime.exceptions import ConfigError  # noqa: E402
from runtime.models.gpt import GptShape, GptShard, Local, Place, generate  # noqa: E402
from runtime.models.gpt_ranks import run_ranks  # noqa: E402
from runtime.models.gpt_ranks import single as single_process  # noqa: E402

SHAPE = GptShape(layers=4, hidden=64, heads=4, vocab=256, max_seq_len=48)
SEED = 7
PROMPT = [[5, 17, 42, 99, 3, 250, 64, 8], [1, 2, 3, 4, 5, 6, 7, 200]]
NEW = 10


def run(tp: int, pp: int, tmp: Path, phase: str, steps: int = NEW, resume: Path | None = None) -> list[list[int]]:
    return run_ranks(SHAPE, SEED, PROMPT, steps, tp, pp, tmp, phase, resume=resume)


def single() -> list[list[int]]:
    return single_process(SHAPE, SEED, PROMPT, NEW)


@pytest.mark.slow
@pytest.mark.parametrize(("tp", "pp"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_greedy_tokens_are_the_same_on_every_configuration(tp: int, pp: int, tmp_path: Path) -> None:
    expected = single()
    assert len({tuple(t) for t in expected}) == 2 and len(set(expected[0])) > 3, "a non-degenerate sequence"
    assert run(tp, pp, tmp_path, f"tp{tp}pp{pp}") == expected


@pytest.mark.slow
def test_a_request_resumes_under_another_configuration_from_its_migrated_kv_cache(tmp_path: Path) -> None:
    before = run(2, 1, tmp_path, "before", steps=4)  # interrupted after 4 tokens under tp=2
    after = run(1, 2, tmp_path, "after", steps=NEW - 4, resume=tmp_path / "before")  # resumed under pp=2
    assert [b + a for b, a in zip(before, after, strict=True)] == single()


def test_one_process_shards_hold_the_unsharded_models_values() -> None:
    whole = GptShard(SHAPE, Place(), SEED, torch.float64)
    halves = [GptShard(SHAPE, Place(tp=2, pp=2, tp_rank=r, stage=1), SEED, torch.float64) for r in (0, 1)]
    # stage 1 of 2 holds layers 2 and 3; tp rank r holds heads 2r, 2r+1 (column blocks of qkv)
    joined = torch.cat([h.layers[0]["qkv"] for h in halves], dim=1)
    assert torch.equal(joined, whole.layers[2]["qkv"])
    assert torch.equal(torch.cat([h.head for h in halves], dim=1), whole.head)
    assert not hasattr(halves[0], "emb"), "only the first stage holds the embeddings"


@pytest.mark.parametrize(
    ("shape", "tp", "pp", "message"),
    [
        (GptShape(4, 64, 3, 256, 48), 1, 1, "model.heads: 3 does not divide model.hidden 64"),
        (GptShape(4, 64, 4, 256, 48), 8, 1, "model.heads: 4 heads cannot be split over tensor parallelism 8"),
        (GptShape(4, 64, 4, 256, 48), 1, 3, "model.padded_layers: 4 layers cannot be split over 3 pipeline stages"),
    ],
)
def test_a_shape_the_configuration_cannot_split_is_refused(shape: GptShape, tp: int, pp: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        shape.check(tp, pp)


@pytest.mark.parametrize(("model", "tp", "pp"), [("tiny", 2, 2), ("6.7B", 4, 4), ("20B", 8, 4), ("30B", 8, 2)])
def test_the_model_configs_shapes_split_as_the_paper_runs_them(model: str, tp: int, pp: int) -> None:
    from orchestrator.plan import typed_config
    from tests.conftest import compose_config

    config = typed_config(compose_config("system=spotserve", f"model={model}"))
    shape = GptShape.of(config.model)
    shape.check(tp, pp)
    assert shape.head_dim == (16 if model == "tiny" else 128)


# --------------------------------------------------------------------------- named blocks, storage
def test_a_shard_built_from_named_blocks_is_the_shard() -> None:
    seeded = GptShard(SHAPE, Place(), SEED, torch.float64)
    rebuilt = GptShard(SHAPE, Place(), SEED, torch.float64, blocks=seeded.named_blocks())
    prompt = torch.tensor(PROMPT)
    assert generate(rebuilt, prompt, 4, Local())[0] == generate(seeded, prompt, 4, Local())[0]


def test_padded_layers_split_the_stages_and_the_places_cover_the_model() -> None:
    from runtime.models.gpt import block_names, stage_layers

    padded = GptShape(layers=3, hidden=64, heads=4, vocab=256, max_seq_len=48, padded_layers=4)
    assert [stage_layers(padded, Place(pp=2, stage=s)) for s in (0, 1)] == [[0, 1], [2]]
    whole = set(block_names(padded, Place()))
    parts = [block_names(padded, Place(tp=2, pp=2, tp_rank=r, stage=s)) for r in (0, 1) for s in (0, 1)]
    # both tp ranks of stage 0 hold emb and pos
    assert set().union(*parts) == whole and sum(map(len, parts)) == len(whole) + 2
    with pytest.raises(ConfigError, match=r"model\.padded_layers: 4 layers cannot be split over 3"):
        padded.check(1, 3)


def test_storage_holds_the_seeded_weights(tmp_path: Path) -> None:
    from runtime.executors.gpt import WeightStorage
    from runtime.models.gpt import seeded_block

    store = WeightStorage(tmp_path, SHAPE, SEED, torch.float32)
    blocks, nbytes = store.read(["layer.2.qkv.1", "head.5", "emb"])
    assert nbytes == sum(b.nbytes for b in blocks.values()) > 0
    assert torch.equal(blocks["layer.2.qkv.1"], seeded_block(SHAPE, SEED, "layer.2.qkv.1", torch.float32))
    files = sorted(p.name for p in store.dir.iterdir())
    assert files == ["embedding.safetensors", "head.safetensors", "layer2.safetensors"]


# --------------------------------------------------------------------------- a GPU's cut and resume
def _gpu(tmp_path: Path, name: str) -> object:
    from runtime.executors.gpt import GptGpu

    gpu = GptGpu(SHAPE, SEED, input_len=8, dtype=torch.float64, device="cpu", storage=tmp_path / name)
    gpu.max_batch = 2
    return gpu


def test_a_batch_cut_on_one_gpu_resumes_on_another_with_the_same_tokens(tmp_path: Path) -> None:
    """The executor's own path: a batch is cut after a step that crossed the deadline (the
    cache holds one token more than was committed), the new GPU takes the plan's weights and
    KV transfers from the old one (safetensors bytes, as over `Blocks`), resumes without a
    prefill, and ends with exactly the tokens of an uninterrupted run."""
    from runtime.executors.gpt import OP_BATCH, OP_CUT, OP_END, OP_STEP, GptGpu, Planned, pack

    def run(gpu: GptGpu, ids: list[int], start: int, until: int) -> list[list[int]]:
        committed = gpu.lead(OP_BATCH, ids, start, 0)
        while committed < until:
            committed = gpu.lead(OP_STEP)
        assert gpu.batch is not None
        return [list(t) for t in gpu.batch.tokens]

    ids, output_len = [3, 11], 12
    whole = _gpu(tmp_path, "c")
    assert isinstance(whole, GptGpu)
    whole.become(Place(), [], False, lambda *a: iter(()))
    expected = run(whole, ids, 0, output_len)

    old, new = _gpu(tmp_path, "a"), _gpu(tmp_path, "b")
    assert isinstance(old, GptGpu) and isinstance(new, GptGpu)
    first = old.become(Place(), [], False, lambda *a: iter(()))
    assert [d.planned.kind for d in first.transfers] == ["storage"], "a first start reads storage"
    old.replica = 7
    assert run(old, ids, 0, 6) == [t[:6] for t in expected]
    old.lead(OP_CUT, a=5)  # the sixth token was made after the deadline: it is not kept

    def fetch(src: str, names: list[str], kv: int, layers: list[int], heads: list[int]):  # type: ignore[no-untyped-def]
        assert src == "worker-a"
        return pack(old.serve(names, kv, layers, heads))

    plan = [
        Planned("weights", (0, 4), 0, 1, -1, "worker-a", 0.0),
        Planned("embedding", (0, 0), 0, 1, -1, "worker-a", 0.0),
        Planned("lm_head", (0, 0), 0, 1, -1, "worker-a", 0.0),
        Planned("kv", (0, 4), 0, 1, 7, "worker-a", 0.0),
    ]
    migration = new.become(Place(), plan, False, fetch)
    moved = {d.planned.kind: d.nbytes for d in migration.transfers}
    assert set(moved) == {"weights", "embedding", "lm_head", "kv"} and all(b > 0 for b in moved.values())
    assert not any(p.exists() for p in (tmp_path / "b").glob("*/*")), "everything came from the old GPU"
    assert run(new, ids, 5, output_len) == expected
    new.lead(OP_END)
    assert new.batch is None and new.kv == {}, "the resumed requests' caches are used up"
    # The old GPU kept its cut batch's caches for this change; a change later they are dropped.
    assert set(old.kv) == set(ids)
    old.replica = 8
    old.become(Place(), [], False, lambda *a: iter(()))
    assert old.kv == {}
