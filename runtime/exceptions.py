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


class RunFailedError(ServelabError):
    """A run that ended but lost something; `result` holds what it measured (kept on disk)."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class AccountingError(RunFailedError):
    """The records of a run do not add up: a query was lost or counted twice."""


class PartialRunError(RunFailedError):
    """A role ended before the run did (killed, stopped, its files missing or rebuilt from its
    journal): the run is partial."""


class LostQueriesError(RunFailedError):
    """The testbed lost queries the approach did not drop on purpose (a submit or a delivery that
    failed, a model that raised)."""


class TrackingError(RunFailedError):
    """The run is not (whole) in MLflow; its files are, and `python -m orchestrator.log` logs them."""


class HostLostError(DeployError):
    """A remote host stopped answering (its SSH connection died)."""
