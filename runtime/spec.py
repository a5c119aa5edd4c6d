"""The run spec: everything a role is told about its run, written by the orchestrator as JSON.

It holds the resolved config (the same schema the orchestrator validated), every role's name,
host and address (roles are told where the others are; nothing is discovered), which class
implements each role of the run's system and which class is its schema (chosen by the
system's registry entry, so the role launcher never branches on a system), what the client's
books need from the system (`ClientTerms`), and the name of the materialised trace file. Roles
read it once at start-up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf

from runtime.exceptions import ServelabError
from runtime.plugins import load_class
from runtime.schema import Config

TRACE_FILE = "trace.csv"  # the run's arrivals, next to the spec (runtime.traces.arrivals format)
SCHEMA_TARGET = "schema"  # the key of `targets` naming the run's Config subclass
C = TypeVar("C", bound=Config)


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
class ClientTerms:
    """What the client's books need from the run's system (its `client_terms`): the latency SLO
    (None: a request counts until the trace's end), the tokens a request generates, and whether
    each query carries its prompt's text (real execution: from prompts_path, else numbered
    placeholders for num_prompts prompts)."""

    slo_s: float | None = None
    output_len: int = 0
    sends_prompts: bool = False
    prompts_path: str | None = None
    num_prompts: int = 0


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    config: Config
    roles: tuple[RoleAddress, ...]
    trace_file: str  # file name next to the spec: the arrivals the client replays
    targets: dict[str, str] = field(default_factory=dict)  # role -> "package.module:Class"
    drain_s: float = 0.0  # trace seconds the client waits after the last arrival (the system's drain_s)
    client: ClientTerms = field(default_factory=ClientTerms)
    directory: Path = Path()  # where the spec was read from (not written)

    def config_as(self, schema: type[C]) -> C:
        """The config as the schema a role of one system reads (a spec of another system is an
        error, not a silent misreading)."""
        if not isinstance(self.config, schema):
            raise ServelabError(f"the run spec holds a {type(self.config).__name__}, not a {schema.__name__}")
        return self.config

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


def config_from_container(data: dict[str, Any], schema: type[C]) -> C:
    """The typed config from a plain resolved container (checks every type again)."""
    merged = OmegaConf.merge(OmegaConf.structured(schema), data)
    cfg = OmegaConf.to_object(merged)
    if not isinstance(cfg, schema):
        raise ServelabError(f"the run's config does not follow {schema.__name__}")
    return cfg


def dump(spec: RunSpec, config_container: dict[str, Any], path: Path) -> None:
    payload = {
        "run_id": spec.run_id,
        "config": config_container,
        "roles": [asdict(r) for r in spec.roles],
        "trace_file": spec.trace_file,
        "targets": spec.targets,
        "drain_s": spec.drain_s,
        "client": asdict(spec.client),
    }
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load(path: Path) -> RunSpec:
    payload = json.loads(path.read_text(encoding="utf-8"))
    schema = load_class(payload["targets"][SCHEMA_TARGET], Config, f"{path}: targets.{SCHEMA_TARGET}")
    return RunSpec(
        run_id=payload["run_id"],
        config=config_from_container(payload["config"], schema),
        roles=tuple(RoleAddress(**r) for r in payload["roles"]),
        trace_file=payload["trace_file"],
        targets=payload.get("targets", {}),
        drain_s=float(payload.get("drain_s", 0.0)),
        client=ClientTerms(**payload.get("client", {})),
        directory=path.parent,
    )
