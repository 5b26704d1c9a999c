"""What every AgentRun remote can do (see `remote.py`)."""

from __future__ import annotations

from syncd.remote.base import Capability

CAPABILITIES = (
    Capability.LIST | Capability.TREE | Capability.DELETE | Capability.RENAME | Capability.MTIME
    | Capability.OVERWRITE
)
