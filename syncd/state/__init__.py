"""syncd's own state: the SQLite database, the journal, the work queue and its payloads."""
