"""syncd: keep local folders in sync with the chat file lists of a BDD file service."""

__version__ = "0.1.0"
