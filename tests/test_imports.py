"""The project's layers: no import cycle among its modules, and none among its packages.

Every import counts, also one deferred into a function (it still runs, just later) and one
under `if TYPE_CHECKING:` (mypy follows it); a cycle anywhere means a module that cannot be
read, moved or tested without the rest of the circle.
"""

from __future__ import annotations

import ast
import graphlib
import typing
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("orchestrator", "runtime", "hydra_plugins", "labkit", "benchmarks", "tests")
# Who may import whom: a package sees only those below it (and the third-party world).
LAYERS = {
    "runtime": set(),
    "hydra_plugins": set(),  # Hydra's plugins know Hydra only
    "orchestrator": {"runtime", "hydra_plugins"},
    "labkit": set(),
    "benchmarks": {"orchestrator", "runtime", "labkit", "hydra_plugins"},
    "tests": {"orchestrator", "runtime", "labkit", "hydra_plugins", "benchmarks"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "__pycache__" in path.parts or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project's modules that `name` imports (`from pkg import mod` is an import of pkg.mod)."""

    def ours(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {m for a in node.names if (m := ours(a.name))}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:
                target = ours(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else ours(base)
                if target:
                    found.add(target)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_the_scan_sees_the_project():
    g = graph()
    assert len(g) > 150
    assert "runtime.schema" in g["orchestrator.plan"]
    assert "orchestrator.deploy.ssh" in g["orchestrator.deploy"]  # a deferred import counts


def test_no_module_imports_itself_through_others():
    try:
        tuple(graphlib.TopologicalSorter(graph()).static_order())
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_packages_import_only_the_layers_below():
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if (pa := a.split(".")[0]) != (pb := b.split(".")[0]) and pb not in LAYERS[pa]
    )
    assert not wrong, "\n".join(wrong)


def test_a_cycle_is_found():
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter({"a": {"b"}, "b": {"c"}, "c": {"a"}}).static_order())


# Modules of one system that live outside its folders: DiffServe's image pipeline and its FID.
OWNED_ELSEWHERE = {
    "diffserve": ("orchestrator.fid", "orchestrator.quality", "runtime.executors", "runtime.models.diffusion"),
    "spotserve": (),
}


def owner(module: str) -> str | None:
    """The system a module belongs to: by its folder, or by the list above (None: shared)."""
    for system, elsewhere in OWNED_ELSEWHERE.items():
        if system in module.split(".") or any(module == m or module.startswith(f"{m}.") for m in elsewhere):
            return system
    return None


def test_shared_code_reads_only_the_shared_schema():
    """A system's schema (runtime/schema/<name>.py) is read by that system's code only: shared
    modules see the base `Config`, and ask the run's `System` for anything system-specific."""
    wrong = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if a.split(".")[0] in ("orchestrator", "runtime")
        and (system := owner(b)) is not None
        and b.startswith("runtime.schema.")
        and owner(a) != system
    )
    assert not wrong, "\n".join(wrong)
    assert owner("runtime.cores.client") is None and owner("runtime.schema.spotserve") == "spotserve"


def test_each_system_owns_its_sections():
    """The shared Config has no section of either system, and neither system has the other's."""
    import dataclasses

    from runtime.schema import Config
    from runtime.schema.diffserve import DiffServeConfig
    from runtime.schema.spotserve import SpotServeConfig

    shared = {f.name for f in dataclasses.fields(Config)}
    diff = {f.name for f in dataclasses.fields(DiffServeConfig)} - shared
    spot = {f.name for f in dataclasses.fields(SpotServeConfig)} - shared
    assert diff == {"cascade", "quality"} and spot == {"model", "spot", "ablation"}
    for base, sub in ((Config, DiffServeConfig), (Config, SpotServeConfig)):
        for section in ("trace", "approach"):  # each system's own subclass of the shared section
            hints_base, hints_sub = typing.get_type_hints(base), typing.get_type_hints(sub)
            assert hints_sub[section] is not hints_base[section] or (section == "approach" and sub is SpotServeConfig)
            assert issubclass(hints_sub[section], hints_base[section])
