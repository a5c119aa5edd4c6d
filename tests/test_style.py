"""The project's own checks, so that the one test command also lints: ruff and mypy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(command: list[str]) -> None:
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_generated_stubs_match_the_proto(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The committed gRPC stubs are what grpcio-tools makes of servelab.proto today."""
    proto = "runtime/protos/servelab.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            proto,
        ],
        cwd=ROOT,
        check=True,
    )
    for name in ("servelab_pb2.py", "servelab_pb2_grpc.py"):
        assert (tmp_path / "runtime" / "protos" / name).read_text() == (
            ROOT / "runtime" / "protos" / name
        ).read_text(), name
