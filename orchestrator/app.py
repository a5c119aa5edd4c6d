"""`python -m orchestrator [group=option ...] [key=value ...] [-m]`: Hydra wiring only
(orchestrator/__main__.py hands every command but a bare `--help` to `main` here).

Every job is composed and validated before anything starts (orchestrator.compose), then Hydra
runs `run_experiment` once per job. Errors a user can cause print one line and exit
non-zero: 2 for bad input (a config value, a trace file), 1 for a failed run, 130 when
interrupted.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException
from yaml import YAMLError

from orchestrator import tracking, tracking_writer
from orchestrator.compose import Refused, composition_error, precheck, register
from orchestrator.config import CONF_DIR, runs_one_job
from orchestrator.console import job_line, print_summary, summary_text
from orchestrator.experiment import Launch, run_experiment
from orchestrator.sweep import parent_run
from runtime.exceptions import ConfigError, ServelabError, TraceFormatError
from runtime.logs import init_logger

log = init_logger("orchestrator")
# Set as Hydra hands a job over: an error before that is the config's. (A plain value: a
# parallel launcher pickles `app` with the globals it uses.)
_job = {"started": False}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_kind(cfg: DictConfig, sweep: bool) -> str:
    """single, smoke (the smoke preset) or sweep job: the `run_kind` tag."""
    if sweep:
        return "sweep job"
    choices = HydraConfig.get().runtime.choices
    return "smoke" if choices.get("experiment") == "smoke" else "single"


def command_line(overrides: Any) -> str:
    """The command that reruns this job alone (a sweep job's own overrides, without -m)."""
    return " ".join(["python -m orchestrator", *(shlex.quote(str(o)) for o in overrides)])


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> dict[str, Any]:
    """One job. In a sweep a failure is returned (the sweep goes on); alone it exits non-zero."""
    _job["started"] = True
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    launch = Launch(kind=run_kind(cfg, sweep), command=command_line(hydra_cfg.overrides.task))
    if cfg.tracking.enabled:
        tracking_writer.prepare(tracking.absolute_uri(cfg.tracking.uri))
    else:
        tracking_writer.stop()
    if sweep:
        quiet_console()
        sweep_dir = Path(hydra_cfg.sweep.dir).resolve()
        launch = dataclasses.replace(
            launch, sweep=sweep_dir.name, job=int(hydra_cfg.job.num), parent_run_id=parent_run(cfg, sweep_dir)
        )
    try:
        result = run_experiment(cfg, run_dir, launch)
    except ServelabError as err:
        log.debug("Run failed", exc_info=True)
        failed = getattr(err, "result", None)
        if failed is not None and not sweep:  # what it measured, then why it failed
            print_summary(failed.run_dir, failed.summary)
        if sweep:  # its one line, like a finished job's; the sweep lists its failures again at the end
            print(f"job {hydra_cfg.job.num} failed: {' '.join(hydra_cfg.overrides.task)} · {err}", flush=True)
            return {"status": "failed", "error": str(err), "run_dir": str(run_dir)}
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(err, ConfigError | TraceFormatError) else 1)
    except KeyboardInterrupt as err:
        measured = getattr(err, "result", None)
        if measured is not None and not sweep:
            print_summary(measured.run_dir, measured.summary)
        # A bare KeyboardInterrupt (Ctrl-C in a virtual run, or in analysis) says nothing itself.
        print(f"error: {str(err) or f'interrupted; what the run wrote is in {run_dir}'}", file=sys.stderr, flush=True)
        sys.exit(130)
    if sweep:
        log.info("Summary:\n%s", summary_text(result.summary))
        print(job_line(int(hydra_cfg.job.num), list(hydra_cfg.overrides.task), result.summary, run_dir), flush=True)
    else:
        print_summary(result.run_dir, result.summary)
    return {"status": "completed", "summary": result.summary, "run_dir": str(run_dir)}


def quiet_console() -> None:
    """A sweep job logs to its orchestrator.log only: its console line comes when it ends, and
    a warning or an error still reaches the console."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def main() -> None:
    register()
    # A log record that cannot be written (a full disk) must not print a traceback on the
    # console: the run's own error says what failed.
    logging.raiseExceptions = False
    # Ctrl-C and SIGTERM both tear the run down. SIGINT is set explicitly: a shell starts
    # background jobs with SIGINT ignored, and Python then keeps it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    argv = sys.argv[1:]
    one = runs_one_job(argv)
    if one:
        # Hydra composes a single run's job only once, and orchestrator.compose.CheckRun checks
        # it; Hydra is told to hand a composition error up, to be said here in one line.
        os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        precheck(argv, hydra_checks_one=one)
        app()
    except (HydraException, OmegaConfBaseException, YAMLError) as err:
        if _job["started"]:  # not the config's: the job's own failure, with its traceback
            raise
        print(f"error: {composition_error(err)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Refused as refused:
        print(f"error: {refused.error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:  # before a job ran (checking the config), or between jobs of a sweep
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
