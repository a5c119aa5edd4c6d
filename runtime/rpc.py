"""gRPC plumbing shared by the roles: channels, servers, and the proto <-> enum mapping.

Every channel carries the run's token (an interceptor adds it to each call's metadata) and
every server refuses a call that lacks it with UNAUTHENTICATED, before any handler runs. With
a certificate in the run's identity, channels and servers use TLS (runtime.identity).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import grpc

from runtime.exceptions import DeployError
from runtime.identity import TLS_NAME, RunIdentity
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


TOKEN_KEY = "x-servelab-run-token"


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _AddToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._pair = (TOKEN_KEY, token)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return self.intercept_unary_unary(continuation, details, request)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._pair]
        return continuation(
            _CallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            ),
            request,
        )


class _RequireToken(grpc.ServerInterceptor):
    """Calls without this run's token never reach a handler."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._refuse = grpc.unary_unary_rpc_method_handler(_refuse)

    def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_KEY:
                given = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(given, self._token):
                    return continuation(details)
        return self._refuse


def _refuse(request: bytes, context: grpc.ServicerContext) -> None:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "the call does not carry this run's token")


def channel(address: str, identity: RunIdentity) -> grpc.Channel:
    """A channel to `address` whose calls carry the run's token (over TLS when the run has a certificate)."""
    if identity.tls:
        creds = grpc.ssl_channel_credentials(root_certificates=identity.tls_cert)
        options = [*_CLIENT_OPTIONS, ("grpc.ssl_target_name_override", TLS_NAME)]
        base = grpc.secure_channel(address, creds, options=options)
    else:
        base = grpc.insecure_channel(address, options=_CLIENT_OPTIONS)
    return grpc.intercept_channel(base, _AddToken(identity.token))


def server(bind: str, identity: RunIdentity, threads: int = 16) -> grpc.Server:
    """A started-later server listening on `bind` that takes only this run's calls; a clear
    error if the address is taken."""
    srv = grpc.server(
        ThreadPoolExecutor(max_workers=threads),
        interceptors=[_RequireToken(identity.token)],
        options=[*_SERVER_OPTIONS, ("grpc.so_reuseport", 0)],
    )
    try:
        if identity.tls:
            assert identity.tls_key is not None and identity.tls_cert is not None
            port = srv.add_secure_port(bind, grpc.ssl_server_credentials([(identity.tls_key, identity.tls_cert)]))
        else:
            port = srv.add_insecure_port(bind)
    except RuntimeError:
        port = 0
    if port == 0:
        raise DeployError(f"cannot listen on {bind}: the port is in use or the address is not local")
    return srv
