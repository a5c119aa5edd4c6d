"""gRPC plumbing shared by the roles: channels, servers, and the proto <-> enum mapping."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc

from runtime.exceptions import DeployError
from runtime.protos import servelab_pb2 as pb
from runtime.records import Tier

_MESSAGES = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
_CLIENT_OPTIONS = [
    *_MESSAGES,
    ("grpc.enable_retries", 0),
    # A peer that is not listening yet (start-up) is retried within 0.1 s, not gRPC's default 1 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Keepalive pings notice a peer whose host vanished in ~2 s (the connection fails, and
    # later calls fail fast) instead of waiting on a dead TCP connection for minutes.
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
_SERVER_OPTIONS = [
    *_MESSAGES,
    # Accept the clients' keepalive pings (by default a server rejects pings this frequent).
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]

TIER_TO_PB = {Tier.LIGHT: pb.LIGHT, Tier.HEAVY: pb.HEAVY, Tier.IDLE: pb.TIER_UNSPECIFIED}
TIER_FROM_PB = {v: k for k, v in TIER_TO_PB.items()}


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=_CLIENT_OPTIONS)


def server(bind: str, threads: int = 16) -> grpc.Server:
    """A started-later server listening on `bind`; a clear error if the address is taken."""
    srv = grpc.server(ThreadPoolExecutor(max_workers=threads), options=[*_SERVER_OPTIONS, ("grpc.so_reuseport", 0)])
    try:
        port = srv.add_insecure_port(bind)
    except RuntimeError:
        port = 0
    if port == 0:
        raise DeployError(f"cannot listen on {bind}: the port is in use or the address is not local")
    return srv
