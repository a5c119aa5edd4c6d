"""`python -m orchestrator`: a bare `--help` is answered from the config folder without
importing Hydra, the systems or their plotting and data libraries (0.1 s, not 3); every other
command goes to the Hydra app (orchestrator/app.py)."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] in (["--help"], ["-h"]):
        from orchestrator.help import help_text

        print(help_text())
        return
    from orchestrator.app import main as run

    run()


if __name__ == "__main__":
    main()
