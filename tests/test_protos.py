"""The generated gRPC stubs are what grpcio-tools makes of the proto today. (Lint, ruff and
mypy, runs as its own step of .ci/run and `make lint`, not inside the test suite.)"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


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
