"""Remotes: the file services syncd syncs with, behind one small protocol."""

from syncd.remote.base import FileStatus, Remote, RemoteFile

__all__ = ["FileStatus", "Remote", "RemoteFile"]
