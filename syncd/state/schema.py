"""The state database's schema, and how a state file of any earlier release is brought to it.

The schema version lives in ``PRAGMA user_version``; `_MIGRATIONS` is the ordered list of
steps from an empty file to the current schema, each applied in one transaction together
with its new `user_version`. Migrations only ever get appended: a released step is never
edited, so a state directory written by any release is taken over with nothing lost
(`tests/fixtures/` keeps one written by release 0.1.0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from syncd.errors import SyncdError

if TYPE_CHECKING:
    from syncd.state.db import State


class StateVersionError(SyncdError):
    """The state database was written by a newer syncd than this one."""


# Each entry is one migration: statements run in a single transaction, after
# which `user_version` is its 1-based position. Append only.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The base of the three-way comparison. A NULL side means "absent at
        # the last sync"; `dropped` marks drop-in uploads that after_upload
        # removed locally (done, never a deletion to propagate).
        """
        CREATE TABLE journal (
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            local_size INTEGER,
            local_mtime_ns INTEGER,
            local_sha256 TEXT,
            remote_id INTEGER,
            remote_size INTEGER,
            remote_hashcode TEXT,
            remote_upload_at TEXT,
            dropped INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (folder, name)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE folders (
            name TEXT PRIMARY KEY,
            last_pass TEXT,
            last_error TEXT,
            paused TEXT
        )
        """,
        """
        CREATE TABLE remotes (
            name TEXT PRIMARY KEY,
            paused TEXT
        )
        """,
        # The work queue (see syncd.state.queue). UNIQUE (folder, name): one row per
        # file, so repeated triggers coalesce. `claims` counts leases handed
        # out; with AUTOINCREMENT ids (never reused) (id, claims) names one
        # lease exactly, so a stale Job can never act on a newer lease.
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_try REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            claims INTEGER NOT NULL DEFAULT 0,
            dirty INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            UNIQUE (folder, name)
        )
        """,
        "CREATE INDEX jobs_due ON jobs (state, next_try)",
        "CREATE INDEX jobs_lease ON jobs (state, lease_until)",
        "CREATE INDEX jobs_folder_state ON jobs (folder, state)",
    ),
    (
        # Each side's own spelling of the name (the key `name` is NFC); NULL: spelled as `name`.
        "ALTER TABLE journal ADD COLUMN local_name TEXT",
        "ALTER TABLE journal ADD COLUMN remote_name TEXT",
        # The remote floor: versions of the name at or below it (by upload_at, then id) are
        # history; versions above it that are not the recorded one are concurrent writes.
        # NULL: the floor is the recorded remote version itself.
        "ALTER TABLE journal ADD COLUMN remote_floor_at TEXT",
        "ALTER TABLE journal ADD COLUMN remote_floor_id INTEGER",
        # What a half-done transfer needs to resume (JSON, per remote kind), kept across retries
        # and restarts of the same work.
        "ALTER TABLE jobs ADD COLUMN resume TEXT",
    ),
    (
        # The journal in syncd's own words, for every kind of remote: the remote side is a
        # version (opaque text: a BDD id becomes its decimal text), a sha256 only where the
        # remote proved one (a hashcode that is not a sha256 proves nothing: NULL), the time
        # the version was written, and the floor's tie-break `seq` (a BDD id, as before).
        """
        CREATE TABLE journal_v3 (
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            local_size INTEGER,
            local_mtime_ns INTEGER,
            local_sha256 TEXT,
            remote_version TEXT,
            remote_size INTEGER,
            remote_sha256 TEXT,
            remote_written_at TEXT,
            dropped INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            local_name TEXT,
            remote_name TEXT,
            remote_floor_at TEXT,
            remote_floor_seq INTEGER,
            PRIMARY KEY (folder, name)
        ) WITHOUT ROWID
        """,
        """
        INSERT INTO journal_v3
        SELECT folder, name, local_size, local_mtime_ns, local_sha256,
               CAST(remote_id AS TEXT), remote_size,
               CASE WHEN length(remote_hashcode) = 64 AND lower(remote_hashcode) NOT GLOB '*[^0-9a-f]*'
                    THEN lower(remote_hashcode) END,
               remote_upload_at, dropped, updated_at, local_name, remote_name,
               remote_floor_at, remote_floor_id
        FROM journal
        """,
        "DROP TABLE journal",
        "ALTER TABLE journal_v3 RENAME TO journal",
        # Where each folder was on its remote at its last pass: a folder pointed at a new
        # place syncs as a first sync (SPEC, "A gone or emptied remote place").
        "ALTER TABLE folders ADD COLUMN place TEXT",
    ),
    (
        # The bytes a job may move over the network (`sync/lanes.py`): small jobs go to the
        # small-transfer lane. NULL, as in every row an older release queued: large.
        "ALTER TABLE jobs ADD COLUMN size INTEGER",
    ),
    (
        # What the last pass left out of sync that no queue row says (`syncd.state.notices`):
        # entries the scan skipped, deletions held back by max_delete, local deletions the
        # remote keeps. `name` as spelled on the local disk; `since`: when first seen so.
        """
        CREATE TABLE notices (
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL,
            since TEXT NOT NULL,
            PRIMARY KEY (folder, name)
        ) WITHOUT ROWID
        """,
    ),
)

SCHEMA_VERSION = len(_MIGRATIONS)


def migrate(state: State) -> None:
    """Bring the schema to `SCHEMA_VERSION`, one transaction per step.

    Each step re-reads `user_version` inside its IMMEDIATE transaction, so two
    processes opening a fresh directory at once cannot both apply it.
    """
    version = state.user_version()
    if version > SCHEMA_VERSION:
        raise StateVersionError(
            f"{state.db_path} has schema version {version}, newer than this syncd "
            f"understands ({SCHEMA_VERSION}); upgrade syncd or use another state_dir"
        )
    for target, statements in enumerate(_MIGRATIONS, start=1):
        if target <= version:
            continue
        with state.transaction() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current >= target:
                continue
            for sql in statements:
                conn.execute(sql)
            # user_version is part of the database header: it commits (or
            # rolls back) with the step's statements.
            conn.execute(f"PRAGMA user_version = {target}")
