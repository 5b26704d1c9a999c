"""syncd's error tree. Every failure is converted into one of these once, at
the edge where it happens (HTTP in `remote/bdd/`, config in `config.py`), so
the rest of syncd decides what to do from the class alone::

    SyncdError
    ├── ConfigError        bad config: exit 2, message names file and key
    ├── StateLocked        another process holds the state dir: exit 3
    ├── StateDamaged       the state database is unreadable: exit 2, offers
    │                      `reconcile --rebuild-journal`
    └── RemoteError        something the remote said or failed to say
        ├── TransientError retry: connection errors, timeouts, 408, 429, 5xx,
        │                  malformed answers (HTML, bad JSON, missing fields)
        ├── ItemError      this one file cannot be synced as asked: other 4xx,
        │                  envelope code != 0, unsafe names; fail the item now
        │   └── Unsupported  the remote cannot do this at all (a capability it
        │                    lacks, `syncd.remote.base.Capability`)
        └── FatalError     the remote as a whole is unusable: 401/403 (auth);
                           pause the remote and say so in status

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


class FatalError(RemoteError):
    """The remote refuses us altogether (authentication); pause it."""


class Unsupported(ItemError):
    """The operation is outside the remote's capabilities: not supported by this remote.

    `capability` names the flag it lacks (its name, e.g. "DELETE"), so a caller can tell this
    apart from an item the remote refused."""

    def __init__(self, message: str, *, capability: str) -> None:
        super().__init__(message)
        self.capability = capability
