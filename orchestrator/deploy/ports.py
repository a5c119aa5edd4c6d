"""Ports for a wall-clock run that never clash with another run on this machine.

With `hostfile.ports=auto` (the default) a run starts at `hostfile.base_port` and, when that
range is taken, moves its every role up by whole blocks until it finds a range that no other
servelab run on this machine holds and that nothing listens on. A run holds its range for its
lifetime through `flock`s on one small file per block of `BLOCK` ports in a folder shared by
the user's runs; the kernel drops the locks when the run's process ends, however it ends, so a
killed run never keeps a range. Two runs started at the same moment therefore take different
ranges. `ports=fixed` keeps `base_port` and fails on a busy port (as before).

Remote hosts are checked over SSH later (Deployment.check_ports); the locks only know this
machine's runs, so two orchestrators on two machines sharing one host still need distinct
base ports.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from runtime.exceptions import ConfigError
from runtime.spec import RoleAddress

BLOCK = 10  # ports per lock file
MAX_PORT = 65535
TRIES = 200


def lock_dir() -> Path:
    """One folder per user, shared by all of that user's runs."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"servelab-ports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    # In a shared /tmp another user could have made it first (and hold every lock in it, or
    # read which ranges are in use): it must be this user's own, closed to others, no link.
    info = path.lstat()
    if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"hostfile.ports: the port-lock folder {path} is not this user's own private folder "
            f"(owner uid {info.st_uid}, mode {info.st_mode & 0o777:o}); remove it, or use hostfile.ports=fixed"
        )
    return path


def shifted(addresses: Iterable[RoleAddress], offset: int) -> tuple[RoleAddress, ...]:
    """Every role's advertised and bind port moved up by `offset`."""

    def move(hostport: str) -> str:
        host, port = hostport.rsplit(":", 1)
        return f"{host}:{int(port) + offset}"

    return tuple(replace(a, address=move(a.address), bind=move(a.bind)) for a in addresses)


def blocks(addresses: Iterable[RoleAddress]) -> list[int]:
    """The lock blocks a set of addresses touches (one per BLOCK ports, whatever the address)."""
    return sorted({int(a.bind.rsplit(":", 1)[1]) // BLOCK for a in addresses})


def offsets(addresses: tuple[RoleAddress, ...]) -> Iterable[int]:
    """Candidate shifts, in whole ranges of the run's own span, rounded up to blocks."""
    ports = [int(a.bind.rsplit(":", 1)[1]) for a in addresses]
    span = (max(ports) - min(ports)) // BLOCK * BLOCK + BLOCK
    for k in range(TRIES):
        if max(ports) + k * span > MAX_PORT:
            return
        yield k * span


@dataclass
class PortReservation:
    """The locks that hold a run's port range; `release` (or the process's end) frees them."""

    addresses: tuple[RoleAddress, ...]
    files: list[int] = field(default_factory=list)

    def release(self) -> None:
        for fd in self.files:
            os.close(fd)  # closing the descriptor drops its flock
        self.files = []


def _lock(folder: Path, block: int) -> int | None:
    fd = os.open(folder / f"{block * BLOCK}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def listening(bind: str) -> bool:
    """Whether something listens on `bind` (a connection in TIME_WAIT does not count, as for gRPC)."""
    addr, port = bind.rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, int(port)))
        except OSError:
            return True
    return False


def reserve(
    addresses: tuple[RoleAddress, ...],
    local: Callable[[RoleAddress], bool],
    folder: Path | None = None,
) -> PortReservation:
    """The first range at or above the given one that this machine's other runs do not hold and
    whose local ports are free, locked for this run."""
    folder = folder or lock_dir()
    for offset in offsets(addresses):
        moved = shifted(addresses, offset)
        held: list[int] = []
        for block in blocks(moved):
            fd = _lock(folder, block)
            if fd is None:
                break
            held.append(fd)
        else:
            if not any(listening(a.bind) for a in moved if local(a)):
                return PortReservation(moved, held)
        PortReservation(moved, held).release()
    first = addresses[0].bind.rsplit(":", 1)[1]
    raise ConfigError(
        f"hostfile.base_port: no free range of {len(addresses)} ports from {first} up to {MAX_PORT} "
        "(other runs or programs hold them); choose another base_port"
    )
