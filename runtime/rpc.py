"""gRPC plumbing shared by the roles: channels, servers, and the proto <-> enum mapping."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc

from runtime.exceptions import DeployError
from runtime.protos import servelab_pb2 as pb
from runtime.records import Tier

_OPTIONS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.enable_retries", 0),
    # A peer that is not listening yet (start-up) is retried within 0.1 s, not gRPC's default 1 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

TIER_TO_PB = {Tier.LIGHT: pb.LIGHT, Tier.HEAVY: pb.HEAVY, Tier.IDLE: pb.TIER_UNSPECIFIED}
TIER_FROM_PB = {v: k for k, v in TIER_TO_PB.items()}


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=_OPTIONS)


def server(bind: str, threads: int = 16) -> grpc.Server:
    """A started-later server listening on `bind`; a clear error if the address is taken."""
    srv = grpc.server(ThreadPoolExecutor(max_workers=threads), options=[*_OPTIONS, ("grpc.so_reuseport", 0)])
    try:
        port = srv.add_insecure_port(bind)
    except RuntimeError:
        port = 0
    if port == 0:
        raise DeployError(f"cannot listen on {bind}: the port is in use or the address is not local")
    return srv
