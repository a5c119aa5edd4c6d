"""Composing configs outside `@hydra.main`: the one place every command, test and benchmark
composes one (`compose_config`, `load_plan`), and the checks that run before Hydra takes over
(`precheck`): every job of a command is composed and validated first, so that a typo or a bad
value is one line naming the key, not a traceback, and nothing starts.

A single run's one job is checked on Hydra's own composition instead (`CheckRun`, a Hydra
callback that runs after Hydra composes the job and before it makes the run's folder),
rather than composed here once more. A sweep's jobs that differ only in plain values are
checked on one composition (`_check_alike`), as a sweep's launcher composes them
(hydra_plugins/servelab_sweepers/alike.py).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.servelab_sweepers.alike import alike_key, values_apart
from orchestrator.config import CONF_DIR, GROUPS, INFO_FLAGS, SCHEMA_GROUP
from orchestrator.config.keys import has_key, override_error
from orchestrator.config.validate import check_path_names
from orchestrator.systems import SYSTEMS, get_system, owner_of_approach, owner_of_group, system_names
from runtime.exceptions import ConfigError, ServelabError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from orchestrator.systems.base import RunPlan


def register() -> None:
    """Every system's schema in Hydra's ConfigStore, as `schema/<system>` in the global package:
    the system's config file lists it first, so every group is type-checked against the
    schema of the system that runs. (The union-of-grids sweeper registers itself:
    hydra_plugins/servelab_sweepers/.)"""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for system in SYSTEMS:
        store.store(group=SCHEMA_GROUP, name=system.name, node=system.schema, package="_global_")


@contextlib.contextmanager
def hydra_context(config_dir: Path = CONF_DIR) -> Iterator[None]:
    """Hydra's global state set to the project's config folder for the block, and cleared after."""
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()


def compose_config(*overrides: str, hydra_config: bool = False) -> DictConfig:
    """The config one job of `python -m orchestrator OVERRIDES` runs with (not validated)."""
    with hydra_context():
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_config)


def load_plan(overrides: list[str]) -> RunPlan:
    """One job's overrides checked as the command line checks them, then resolved."""
    from orchestrator.plan import resolve

    precheck(overrides)
    return resolve(compose_config(*overrides))


# Flags that make Hydra print or describe instead of run: leave those to Hydra.


def search_dirs(argv: list[str]) -> list[Path]:
    """Extra config directories from `hydra.searchpath=[file:///dir,...]` (e.g. your hostfiles)."""
    dirs = []
    for a in argv:
        if a.startswith("hydra.searchpath="):
            for raw in a.split("=", 1)[1].strip("[]").split(","):
                item = raw.strip().strip("'\"")
                if item.startswith("file://"):
                    dirs.append(Path(item[len("file://") :]))
    return dirs


def group_options(group: str, extra: list[Path] | None = None) -> list[str]:
    found = {p.stem for d in [CONF_DIR, *(extra or [])] for p in (d / group).glob("*.yaml")}
    return sorted(found)


def overrides_of(argv: list[str]) -> list[str]:
    """The command's config overrides (flags and Hydra's own keys left out)."""
    return [a for a in argv if not a.startswith("-") and not a.startswith("hydra.") and not a.startswith("hydra/")]


def _experiment_systems(override: str, extra: list[Path] | None) -> list[str]:
    """The systems the experiment presets of `experiment=...` switch to (`override /system: X`)."""
    systems = []
    for name in override.split("=", 1)[1].split(","):
        for folder in [CONF_DIR, *(extra or [])]:
            path = folder / "experiment" / f"{name.strip()}.yaml"
            if path.is_file():
                defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
                systems += [d["override /system"] for d in defaults if isinstance(d, dict) and "override /system" in d]
    return systems


def trace_owners(option: str, extra: list[Path] | None = None) -> list[str]:
    """The systems whose trace section takes every key of the trace file `option` (a SpotServe
    trace has availability events, a DiffServe one an arrival rate)."""
    for folder in [CONF_DIR, *(extra or [])]:
        path = folder / "trace" / f"{option}.yaml"
        if path.is_file():
            keys = set(yaml.safe_load(path.read_text()) or {}) - {"defaults"}
            return [s.name for s in SYSTEMS if all(has_key(s.schema, f"trace.{k}") for k in keys)]
    return []


def _check_other_systems(overrides: list[str], systems: list[str], extra: list[Path] | None) -> None:
    """A trace, or a setting, that only another system's schema has: one line naming that system
    (Hydra's own message would only say the key is not in the schema)."""
    ours = [get_system(s) for s in systems]
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if key == "trace" and sep:
            for choice in (c.strip() for c in value.split(",")):
                owners = trace_owners(choice, extra)
                if owners and not any(s in owners for s in systems):
                    raise ConfigError(f"trace: {choice} is a {owners[0]} trace: it needs system={owners[0]}")
        if key in GROUPS or not sep or any(has_key(s.schema, key) for s in ours):
            continue
        other = next((s for s in SYSTEMS if has_key(s.schema, key)), None)
        if other is not None:
            raise ConfigError(
                f"{key}: a {other.name} setting; the {'/'.join(systems)} system has no such key "
                f"(add system={other.name} to run {other.name})"
            )


def check_group_choices(overrides: list[str], extra: list[Path] | None = None) -> None:
    """A group option that does not exist, or that belongs to another system, in one line."""
    named = [v for o in overrides if o.startswith("system=") for v in o.split("=", 1)[1].split(",")]
    named = named or [s for o in overrides if o.startswith("experiment=") for s in _experiment_systems(o, extra)]
    systems = [s for s in named or system_names()[:1] if s in system_names()]
    for item in overrides:
        key = item.partition("=")[0].lstrip("+~")
        owner = owner_of_group(key)
        for other in (s for s in systems if owner is not None and s != owner.name):
            assert owner is not None
            group = get_system(other).subject_key
            wanted = f"{group}={'|'.join(group_options(group, extra))}"
            raise ConfigError(
                f"{key}: the {other} system takes {wanted}, not a {key} (add system={owner.name} to run {owner.name})"
            )
    _check_other_systems(overrides, systems, extra)
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS:
            continue
        options, label = group_options(key, extra), key
        if key == "approach" and systems:
            # Every system's approaches share the group: name only those of the systems asked for.
            # A config file of your own (hydra.searchpath) may name a plugin approach: its
            # files are choices too; which system takes it is checked when the job resolves.
            ours = {p.stem for d in extra or [] for p in (d / "approach").glob("*.yaml")}
            options = sorted({a for s in systems for a in get_system(s).approaches} | ours)
            label = f"{'/'.join(systems)} approach"
        for raw in value.split(","):
            choice = raw.strip()
            if choice and choice != "null" and choice not in options:
                owner = owner_of_approach(choice) if key == "approach" else None
                close = difflib.get_close_matches(choice, options, n=1)
                hint = f" (a {owner.name} approach: it needs system={owner.name})" if owner else ""
                guess = f"; did you mean {close[0]}?" if close and not owner else ""
                raise ConfigError(f"{key}: unknown {label} {choice!r}{hint} (allowed: {', '.join(options)}){guess}")


def job_overrides(overrides: list[str]) -> list[list[str]]:
    """Every job a (multi)run command expands to."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _config_error(err: BaseException) -> ConfigError:
    """Hydra's or OmegaConf's error as one line (an unknown key with the closest known one; a
    value of the wrong type with its key and the type it needs)."""
    known = override_error(str(err), [s.schema for s in SYSTEMS])
    if known is not None:
        return known
    cause = err.__cause__
    key = getattr(cause, "full_key", None)
    if isinstance(cause, OmegaConfBaseException) and key and str(err).startswith("Error merging override"):
        return ConfigError(f"{key}: {str(cause).strip().splitlines()[0]}")
    return ConfigError(_one_line(err))


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else type(err).__name__
    detail = next((ln.strip() for ln in text[1:] if ln.strip() and not ln.startswith(" ")), "")
    return f"{first} ({detail})" if detail and detail not in first else first


def _yaml_error(err: yaml.YAMLError) -> ConfigError:
    """A config file that is not YAML: its file, line and the parser's complaint."""
    mark = getattr(err, "problem_mark", None)
    where = f"{mark.name}:{mark.line + 1}" if mark is not None else "a config file"
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return ConfigError(f"{where}: malformed YAML ({problem})")


def _first_job(jobs: list[list[str]], hydra_args: list[str]) -> DictConfig:
    """A sweep's first job, composed with Hydra's own node (which says the sweeper) and the
    command's Hydra overrides (`hydra/launcher=...`, `hydra.sweeper.grids=...`): an unknown
    launcher or sweeper is said here in one line, and the sweep's grids are the command's."""
    try:
        return compose(config_name="config", overrides=[*hydra_args, *jobs[0]], return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise _config_error(err) from None
    except yaml.YAMLError as err:
        raise _yaml_error(err) from None


def _sweeper_jobs(first: DictConfig, overrides: list[str], jobs: list[list[str]]) -> list[list[str]]:
    """The jobs of a union-of-grids sweep (hydra_plugins/servelab_sweepers/) when the config
    (`first`, the first job's) asks for one."""
    sweeper = first.hydra.sweeper
    if not str(sweeper.get("_target_", "")).endswith("GridsSweeper"):
        return jobs
    from hydra_plugins.servelab_sweepers.grids_sweeper import expand

    try:
        return expand(list(sweeper.grids), overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"hydra.sweeper.grids: {_one_line(err)}") from None


PARALLEL_FROM = 8  # jobs: below this, starting worker processes costs more than it saves
_checked_stores: set[str] = set()  # tracking stores checked by this process


def _init_checker() -> None:
    register()
    GlobalHydra.instance().clear()
    initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3").__enter__()  # for this process's life


def _check(job: list[str]) -> BaseException | None:
    """Compose and resolve one job; the error it raises, as a value."""
    try:
        cfg = compose(config_name="config", overrides=job)
    except (HydraException, OmegaConfBaseException) as err:
        return _config_error(err)
    except yaml.YAMLError as err:
        return _yaml_error(err)
    return _check_composed(cfg)


def _check_composed(cfg: DictConfig) -> BaseException | None:
    """Resolve one composed job and check its tracking store; the error it raises, as a value."""
    from orchestrator import tracking
    from orchestrator.plan import resolve

    try:
        plan = resolve(cfg)
        t = plan.config.tracking
        if t.enabled and t.uri not in _checked_stores:
            tracking.check_store(tracking.absolute_uri(t.uri))
            _checked_stores.add(t.uri)
    except (HydraException, OmegaConfBaseException) as err:
        return _config_error(err)
    except ServelabError as err:
        return err
    return None


def composition_error(err: BaseException) -> ConfigError:
    """Hydra's error composing a job (a single run's, which Hydra composes itself) as one line."""
    return _yaml_error(err) if isinstance(err, yaml.YAMLError) else _config_error(err)


class Refused(BaseException):
    """A single run's config, refused by `CheckRun`. Not an Exception: Hydra turns a callback's
    Exception into a warning and goes on to run the job."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class CheckRun(Callback):
    """A single run's job, checked as `precheck` checks every job of a sweep: between Hydra's
    composition and the run's folder, so that a bad value still starts nothing."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        task = copy.deepcopy(config)  # the job's config is the composed one without Hydra's node
        with read_write(task), open_dict(task):
            del task["hydra"]
        err = _check_composed(task)
        if err is not None:
            raise Refused(err)


def group_names(extra: list[Path] | None = None) -> frozenset[str]:
    """Every config group a command line may pick an option of: the folders of the config
    directories (ours and `hydra.searchpath`'s), and the schemas' group."""
    folders = {p.name for d in [CONF_DIR, *(extra or [])] if d.is_dir() for p in d.iterdir() if p.is_dir()}
    return frozenset({*folders, *GROUPS, SCHEMA_GROUP, "hydra"})


def _check_alike(jobs: list[list[str]], values: list[list[str]]) -> list[BaseException | None]:
    """Check jobs that differ only in the values of the same plain settings (`values`: each
    job's, seeds say): the first is composed, each other one is that config with its own values
    set, as Hydra sets a command line's values once it has composed the files (a fraction of
    the time of composing each)."""
    try:
        cfg = compose(config_name="config", overrides=jobs[0])
    except (HydraException, OmegaConfBaseException, yaml.YAMLError):
        return list(map(_check, jobs))  # each composed alone: its own error
    errors = [_check_composed(cfg)]
    parser = OverridesParser.create()
    for job, settings in zip(jobs[1:], values[1:], strict=True):
        try:  # every key the group sets, so nothing of the job before stays
            ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(settings), cfg)
        except (HydraException, OmegaConfBaseException):
            errors.append(_check(job))  # composed alone, for the error a lone job gets
            continue
        errors.append(_check_composed(cfg))
    return errors


def _alike(jobs: list[list[str]], groups: frozenset[str]) -> list[tuple[list[int], list[list[str]]]]:
    """The jobs (by index) grouped so that each group can be checked by `_check_alike`, with
    each job's plain settings."""
    found: dict[object, tuple[list[int], list[list[str]]]] = {}
    for i, job in enumerate(jobs):
        split = values_apart(job, groups)
        key = alike_key(split) if split is not None else i
        indices, values = found.setdefault(key, ([], []))
        indices.append(i)
        values.append(split[1] if split is not None else [])
    return list(found.values())


def _check_all(jobs: list[list[str]], extra: list[Path] | None = None) -> None:
    """Raise the first job's error, if any. Many jobs (a sweep) are checked by a few worker
    processes (composing a config costs Hydra about 0.1 s), jobs alike together."""
    groups = _alike(jobs, group_names(extra))
    alike = [[jobs[i] for i in indices] for indices, _ in groups]
    values = [v for _, v in groups]
    found: Iterable[list[BaseException | None]]
    if len(jobs) < PARALLEL_FROM:
        found = map(_check_alike, alike, values)
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        workers = min(4, os.cpu_count() or 1)
        with ProcessPoolExecutor(workers, multiprocessing.get_context(method), initializer=_init_checker) as pool:
            found = list(pool.map(_check_alike, alike, values))
    errors: dict[int, BaseException | None] = {}
    for (indices, _), errs in zip(groups, found, strict=True):
        errors.update(zip(indices, errs, strict=True))
    for i in sorted(errors):
        if errors[i] is not None:
            raise errors[i]  # type: ignore[misc]


def precheck(argv: list[str], hydra_checks_one: bool = False) -> int:
    """Compose and validate every job of `argv`; raises ConfigError; returns the number of jobs.
    hydra_checks_one: a single job is left to `CheckRun` (the command goes on to Hydra) after
    the checks that need no composition."""
    if any(a.split("=")[0] in INFO_FLAGS for a in argv):
        return 0
    overrides = overrides_of(argv)
    for a in argv:  # Hydra makes these folders before a job runs: their names must fit first
        key, _, value = a.partition("=")
        if key in ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir"):
            check_path_names(value, key)
    searchpath = [a for a in argv if a.startswith("hydra.searchpath=")]
    check_group_choices(overrides, search_dirs(argv))
    try:
        jobs = job_overrides(overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"overrides: {_one_line(err)}") from None
    multirun = "-m" in argv or "--multirun" in argv
    if hydra_checks_one and not multirun and len(jobs) == 1:
        return len(jobs)
    with hydra_context():
        if multirun:
            first = _first_job(jobs, [a for a in argv if a.startswith(("hydra.", "hydra/"))])
            if first.tracking.enabled:  # the sweep's MLflow writer builds the store while the jobs are checked
                from orchestrator import tracking, tracking_writer

                with contextlib.suppress(Exception):  # a bad uri is the check's to report
                    tracking_writer.prepare(tracking.absolute_uri(str(first.tracking.uri)))
            jobs = _sweeper_jobs(first, overrides, jobs)
        jobs = [[*searchpath, *job] for job in jobs]
        if len(jobs) < PARALLEL_FROM:
            _check_all(jobs, search_dirs(argv))
    if len(jobs) >= PARALLEL_FROM:
        _check_all(jobs, search_dirs(argv))
    return len(jobs)
