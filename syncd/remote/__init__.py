"""Remotes: the file services syncd syncs with, behind one small protocol."""

from syncd.remote.base import Capability, FileStatus, Remote, RemoteFile

__all__ = ["Capability", "FileStatus", "Remote", "RemoteFile"]
