"""Role placement from the hostfile: which role runs on which host, at which address and port.

Pure: the hostfile and the worker count in, the list of role addresses out. Roles are told
these addresses explicitly; ports are consecutive from `base_port` per address and checked for
clashes here, before anything starts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from runtime.exceptions import ConfigError
from runtime.schema import HostConfig, HostfileConfig
from runtime.spec import RoleAddress

SINGLE_ROLES = ("controller", "load_balancer", "sink", "client")
MAX_PORT = 65535
START_ORDER = ("controller", "load_balancer", "sink", "worker", "client")


def worker_capacity(host: HostConfig) -> int | None:
    """Workers a host can run: one per GPU (times workers_per_gpu), unbounded without GPUs."""
    return len(host.gpus) * host.workers_per_gpu if host.gpus else None


def place(
    hostfile: HostfileConfig,
    workers: int,
    instances: list[str] | None = None,
    gpus_per_instance: int = 4,
    share_instance_process: bool = False,
) -> list[RoleAddress]:
    """Every role of the run with its host, bind and advertised addresses, in start order.
    With `instances` (SpotServe), worker i is GPU i % gpus_per_instance of instance
    instances[i // gpus_per_instance]; with `share_instance_process`, an instance's workers
    share one process (and its address) named `workers-<instance>`."""
    hosts = hostfile.hosts
    placed: dict[str, HostConfig] = {}
    for role in SINGLE_ROLES:
        on = [h for h in hosts if role in h.roles]
        if len(on) != 1:
            where = ", ".join(h.name for h in on) or "no host"
            raise ConfigError(f"hostfile.hosts: the {role} must be placed on exactly one host (found on {where})")
        placed[role] = on[0]

    worker_hosts = [h for h in hosts if "worker" in h.roles]
    if not worker_hosts:
        raise ConfigError("hostfile.hosts: no host runs workers (add 'worker' to a host's roles)")
    assignment = _spread_workers(worker_hosts, workers)

    next_port: dict[str, int] = defaultdict(lambda: hostfile.base_port)
    used: dict[str, str] = {}

    def address(
        role: str, name: str, host: HostConfig, gpu: int | None = None, instance: str | None = None
    ) -> RoleAddress:
        bind_host = host.bind_address or host.address
        port = next_port[host.address]
        next_port[host.address] += 1
        if port > MAX_PORT:
            raise ConfigError(
                f"hostfile.base_port: {hostfile.base_port} leaves no port for {name} on {host.address} "
                f"(its roles need ports past {MAX_PORT}; choose a lower base_port)"
            )
        key = f"{host.address}:{port}"
        if key in used:
            raise ConfigError(f"hostfile.hosts: port clash at {key} between {used[key]} and {name}")
        used[key] = name
        return RoleAddress(
            name=name, role=role, host=host.name, address=key, bind=f"{bind_host}:{port}", gpu=gpu, instance=instance
        )

    roles = [address(role, role, placed[role]) for role in SINGLE_ROLES]
    if instances is not None:
        for i, (host, _) in enumerate(assignment):
            instance, gpu = instances[i // gpus_per_instance], i % gpus_per_instance
            prev = roles[-1]
            if share_instance_process and gpu > 0 and prev.instance == instance and prev.host == host.name:
                roles.append(replace(prev, name=f"worker-{i}", gpu=gpu))  # the same process and address
                continue
            a = address("worker", f"worker-{i}", host, gpu, instance)
            if share_instance_process:
                split = prev.instance == instance  # an instance spread over hosts: one process per host
                a = replace(a, process=f"workers-{instance}" + (f"-{host.name}" if split else ""))
            roles.append(a)
    else:
        roles += [address("worker", f"worker-{i}", host, gpu) for i, (host, gpu) in enumerate(assignment)]
    order = {r: i for i, r in enumerate(START_ORDER)}
    return sorted(roles, key=lambda r: order[r.role])


def _spread_workers(hosts: list[HostConfig], workers: int) -> list[tuple[HostConfig, int | None]]:
    """Fill GPU hosts in hostfile order, one worker per GPU slot; hosts without GPUs share the rest."""
    slots: list[tuple[HostConfig, int | None]] = []
    for host in hosts:
        for gpu in host.gpus:
            slots += [(host, gpu)] * host.workers_per_gpu
    unbounded = [h for h in hosts if worker_capacity(h) is None]
    if len(slots) < workers and not unbounded:
        raise ConfigError(
            f"hostfile.workers: {workers} workers requested but the hosts have {len(slots)} GPU worker slots"
        )
    chosen = slots[:workers]
    for i in range(workers - len(chosen)):
        chosen.append((unbounded[i % len(unbounded)], None))
    return chosen
