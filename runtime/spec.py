"""The run spec: everything a role is told about its run, written by the orchestrator as JSON.

It holds the resolved config (the same schema the orchestrator validated), every role's name,
host and address (roles are told where the others are; nothing is discovered), which class
implements each role of the run's system (chosen by the system's registry entry, so the role
launcher never branches on a system), and the name of the materialised trace file. Roles read
it once at start-up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from runtime.schema import Config

TRACE_FILE = "trace.csv"  # the run's arrivals, next to the spec (runtime.traces.arrivals format)


@dataclass(frozen=True)
class RoleAddress:
    """One role process: where it runs and where it listens."""

    name: str  # unique in the run, e.g. worker-3
    role: str  # controller, load_balancer, worker, sink, client
    host: str  # host name from the hostfile
    address: str  # host:port the others dial
    bind: str  # host:port the role listens on
    gpu: int | None = None  # GPU index (real execution; SpotServe: index on its instance)
    instance: str | None = None  # SpotServe: the spot instance this worker's GPU belongs to
    process: str | None = None  # the process that hosts this role when several share one (else its own)

    @property
    def process_name(self) -> str:
        return self.process or self.name


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    config: Config
    roles: tuple[RoleAddress, ...]
    trace_file: str  # file name next to the spec: the arrivals the client replays
    targets: dict[str, str] = field(default_factory=dict)  # role -> "package.module:Class"
    drain_s: float = 0.0  # trace seconds the client waits after the last arrival (the system's drain_s)
    directory: Path = Path()  # where the spec was read from (not written)

    @property
    def trace_path(self) -> Path:
        return self.directory / self.trace_file

    def role(self, name: str) -> RoleAddress:
        """The role named `name`, or the first role hosted by the process named `name`."""
        for r in self.roles:
            if r.name == name:
                return r
        members = self.members(name)
        if members:
            return members[0]
        raise KeyError(f"no role named {name!r} in the run spec")

    def members(self, process: str) -> list[RoleAddress]:
        """The roles the process named `process` hosts."""
        return [r for r in self.roles if r.process_name == process]

    def of(self, role: str) -> list[RoleAddress]:
        return [r for r in self.roles if r.role == role]

    def only(self, role: str) -> RoleAddress:
        found = self.of(role)
        if len(found) != 1:
            raise KeyError(f"expected exactly one {role}, the spec has {len(found)}")
        return found[0]


def config_from_container(data: dict[str, Any]) -> Config:
    """The typed config from a plain resolved container (checks every type again)."""
    merged = OmegaConf.merge(OmegaConf.structured(Config), data)
    cfg = OmegaConf.to_object(merged)
    assert isinstance(cfg, Config)
    return cfg


def dump(spec: RunSpec, config_container: dict[str, Any], path: Path) -> None:
    payload = {
        "run_id": spec.run_id,
        "config": config_container,
        "roles": [asdict(r) for r in spec.roles],
        "trace_file": spec.trace_file,
        "targets": spec.targets,
        "drain_s": spec.drain_s,
    }
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load(path: Path) -> RunSpec:
    payload = json.loads(path.read_text(encoding="utf-8"))
    return RunSpec(
        run_id=payload["run_id"],
        config=config_from_container(payload["config"]),
        roles=tuple(RoleAddress(**r) for r in payload["roles"]),
        trace_file=payload["trace_file"],
        targets=payload.get("targets", {}),
        drain_s=float(payload.get("drain_s", 0.0)),
        directory=path.parent,
    )
