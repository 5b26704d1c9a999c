"""The local side: scanning a folder, writing into it durably, watching it."""
