"""The project's exception hierarchy: one base, a few kinds a user can act on.

Every error a user can cause (bad config, bad trace file, a host that does not come up)
is one of these, and the command line prints it as one line with no traceback.
"""


class ServelabError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(ServelabError):
    """A config key has a value that is not allowed; the message names the key."""


class TraceFormatError(ServelabError):
    """A trace or table file is missing or malformed; the message names the file and line."""


class DeployError(ServelabError):
    """A role could not be started, did not become ready, or a host was lost."""


class AccountingError(ServelabError):
    """The records of a run do not add up: a query was lost or counted twice."""


class PartialRunError(ServelabError):
    """A role left its files missing (it was killed before it wrote them): the run is partial."""


class HostLostError(DeployError):
    """A remote host stopped answering (its SSH connection died)."""
