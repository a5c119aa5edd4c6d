"""Putting roles on hosts: placement (pure), hosts (local processes or SSH), the supervisor
that owns each role process, and the launcher that starts, watches and stops them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.deploy.base import Host
    from runtime.schema import HostConfig


def connect(config: HostConfig) -> Host:
    """The host object for one hostfile entry: a local one, or SSH (Fabric is imported only then)."""
    if config.ssh is None:
        from orchestrator.deploy.local import LocalHost

        return LocalHost(config)
    from orchestrator.deploy.ssh import SshHost

    return SshHost(config)
