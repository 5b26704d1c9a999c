"""Remotes: the file services syncd syncs with, behind one small protocol."""

from syncd.remote.base import Capability, Remote, RemoteFile

__all__ = ["Capability", "Remote", "RemoteFile"]
