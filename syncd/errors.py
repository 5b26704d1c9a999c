"""syncd's error tree. Every failure is converted into one of these once, at
the edge where it happens (HTTP in `remote/bdd/`, the folder in `local/`,
config in `config.py`), so the rest of syncd decides what to do from the class
alone::

    SyncdError
    ├── ConfigError        bad config: exit 2, message names file and key
    ├── StateLocked        another process holds the state dir: exit 3
    ├── StateDamaged       the state database is unreadable: exit 2, offers
    │                      `reconcile --rebuild-journal`
    ├── LocalError         the local folder, not the remote, stood in the way
    │   ├── LocalChanged       the file is not what the plan saw: plan the
    │   │   │                  name again (never retried as it was)
    │   │   └── RemoteChanged  the remote file is not what the plan saw (a
    │   │                      remote that overwrites, checked right before)
    │   ├── FolderUnavailable  the folder's marker is gone (unmounted disk):
    │   │                      pause the folder, keep its work
    │   ├── NotSettled         written too recently: wait out `settle`
    │   └── FileShrank         the file got shorter while it was being sent
    │                          (also a TransientError: see its docstring)
    └── RemoteError        something the remote said or failed to say
        ├── TransientError retry: connection errors, timeouts, 408, 429, 5xx,
        │                  malformed answers (HTML, bad JSON, missing fields)
        ├── PlaceGone      the folder's place is gone (a sandbox that expired):
        │                  pause the folder, delete nothing on either side
        ├── ItemError      this one file cannot be synced as asked: other 4xx,
        │                  envelope code != 0, unsafe names; fail the item now
        │   └── Unsupported  the remote cannot do this at all (a capability it
        │                    lacks, `syncd.remote.base.Capability`)
        └── FatalError     the remote as a whole is unusable: 401/403 (auth);
            │              pause the remote and say so in status
            └── AuthExpired    a login that ran out: log in again (then the
                               pause lifts like any other)

Order of handling, where one failure could read as several: the worker looks
at the local classes first (`sync/workers.py`): a folder that went away is
not the remote's fault. Within `FatalError` the more specific advice comes
first ("log in again" before "remote paused").

Messages say what failed and on which file; they never carry a secret.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is wrong; the message names the file and the key."""


class StateLocked(SyncdError):
    """Another syncd process holds this state directory."""


class StateDamaged(SyncdError):
    """The state database cannot be read (damaged, or not a database); the message says how to rebuild it."""


# -- the local side -------------------------------------------------------------------------------


class DaemonRefused(SyncdError):
    """The running daemon answered a command's request over its control socket with an error
    (the message is the daemon's): exit 1."""


class LocalError(SyncdError):
    """The local folder stood in the way of an action; the remote is not to blame."""


class LocalChanged(LocalError):
    """The local file is not what the plan saw: it must be planned again."""


class RemoteChanged(LocalChanged):
    """The remote file is not what the plan saw (another writer, on a remote that overwrites in
    place, seen by a check right before syncd would overwrite or delete it): plan it again. A
    kind of LocalChanged for the worker, which replans either; neither is the remote failing."""


class FolderUnavailable(LocalError):
    """The folder's marker is gone (its disk unmounted, the folder moved away): nothing may be
    written into it or concluded from it until it is back."""


class NotSettled(LocalError):
    """The file changed too recently to upload; try again once it is quiet (`retry_after`
    seconds from now, when known)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- the remote side ------------------------------------------------------------------------------


class RemoteError(SyncdError):
    """A remote call failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(RemoteError):
    """Worth retrying: the same request may well succeed later."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ItemError(RemoteError):
    """This item cannot be synced as asked; retrying will not help."""


class PlaceGone(RemoteError):
    """The folder's place on the remote is gone (an AgentRun sandbox that expired or was
    deleted): the folder pauses with this reason, and nothing is deleted or trashed on either
    side, whatever `delete` says, until the place answers again or the folder is pointed at a
    new one."""


class FatalError(RemoteError):
    """The remote refuses us altogether (authentication); pause it."""


class Unsupported(ItemError):
    """The operation is outside the remote's capabilities: not supported by this remote.

    `capability` names the flag it lacks (its name, e.g. "DELETE"), so a caller can tell this
    apart from an item the remote refused."""

    def __init__(self, message: str, *, capability: str) -> None:
        super().__init__(message)
        self.capability = capability


class AuthExpired(FatalError):
    """The remote's login ran out: someone must log in again. Handled as every `FatalError`
    (the remote is paused, its work waits), with this advice in the message."""


class FileShrank(LocalError, TransientError):
    """The local file got shorter while an upload was reading it: what was promised in
    Content-Length cannot be sent. Raised from inside a transfer call, so it is also a
    `TransientError`: the call's retries and the worker's backoff treat it as they always did
    (the next pass re-reads the file)."""
