"""`python -m orchestrator`: a bare `--help` is answered from the config folder without
importing Hydra, the systems or their plotting and data libraries (0.05 s, not 3); every other
command goes to the Hydra app (orchestrator/app.py).

A single run ends with `os._exit` once its files are closed: the interpreter's own teardown
(freeing every module of torch, pandas, matplotlib and MLflow one by one) cost 0.7 s of a 5.3-s
virtual run and writes nothing. By then the run has stopped its roles, written its files and
logged to MLflow (each call committed; its writer process, orchestrator/tracking_writer.py, is
idle and is stopped here), and the log handlers are flushed and closed here;
tests/test_cli.py reads a run back after such an exit. A sweep (`-m`) exits normally: its
launcher may hold worker processes or a Ray connection that exit handlers close. A sweep cut
short (Ctrl-C) first has its writer log what it holds and its parent run ended KILLED.
"""

from __future__ import annotations

import logging
import os
import sys


def exit_now(code: int) -> None:
    writer = sys.modules.get("orchestrator.tracking_writer")
    if writer is not None:
        writer.stop()  # idle by now: its run is written
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    argv = sys.argv[1:]
    if argv in (["--help"], ["-h"]):
        from orchestrator.help import help_text

        print(help_text())
        return
    try:
        from orchestrator.startup import importing

        with importing():
            from orchestrator.config import runs_one_job

            if runs_one_job(argv) or "-m" in argv or "--multirun" in argv:
                from orchestrator import tracking_writer

                tracking_writer.start()  # MLflow made ready beside the run or sweep, from its first second
            from orchestrator.app import main as run

        run()
        code = 0
    except KeyboardInterrupt:  # Ctrl-C while Python still loads the app: nothing has started
        print("error: interrupted", file=sys.stderr, flush=True)
        code = 130
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    if "-m" in argv or "--multirun" in argv:
        from orchestrator import tracking_writer

        sweep = sys.modules.get("orchestrator.sweep")
        if sweep is not None:
            sweep.end_unfinished()  # a sweep that ended early: its parent run KILLED, not RUNNING
        tracking_writer.stop()  # and what its writer holds is logged first
        sys.exit(code)
    exit_now(code)


if __name__ == "__main__":
    main()
