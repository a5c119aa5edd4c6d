"""A run's identity: the random token every RPC of the run carries, and, when the run spans
hosts, the TLS certificate its channels use.

The orchestrator makes one per run (`make`) and writes it next to the spec, readable by its
owner only (`write`); every role reads it at start-up (`read`). A server refuses a call without
the token (runtime.rpc), so two runs on the same ports cannot talk to each other and a stranger
cannot stop a role. The certificate is self-signed, made for this run and trusted by this run
only: its channels check the peer against it under one fixed name (`TLS_NAME`), whatever
address a host is reached at.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

IDENTITY_FILE = "identity.json"
TLS_NAME = "servelab-run"  # the certificate's one DNS name; channels expect it (ssl_target_name_override)


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    token: str
    tls_cert: bytes | None = None  # PEM: the run's self-signed certificate (None: plaintext loopback)
    tls_key: bytes | None = None  # PEM: its private key (servers need it)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def make(run_id: str, tls: bool, days: int = 7) -> RunIdentity:
    """A fresh identity; with `tls`, a new key and a certificate valid for `days`."""
    token = secrets.token_urlsafe(32)
    if not tls:
        return RunIdentity(run_id, token)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{TLS_NAME} {run_id}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # hosts' clocks differ a little
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return RunIdentity(
        run_id,
        token,
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def write(identity: RunIdentity, path: Path) -> None:
    """The identity as JSON, readable by its owner only (created so, never widened)."""
    payload = {
        "run_id": identity.run_id,
        "token": identity.token,
        "tls_cert": identity.tls_cert.decode() if identity.tls_cert else None,
        "tls_key": identity.tls_key.decode() if identity.tls_key else None,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh)


def read(path: Path) -> RunIdentity:
    payload = json.loads(path.read_text(encoding="utf-8"))
    cert, key = payload.get("tls_cert"), payload.get("tls_key")
    return RunIdentity(
        payload["run_id"], payload["token"], cert.encode() if cert else None, key.encode() if key else None
    )
