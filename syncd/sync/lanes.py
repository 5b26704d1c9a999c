"""The worker pool's two lanes: how much a job moves, and which jobs are small.

Over a network a small file costs a round trip or two whatever its size, so many of them in
flight hide the latency; a large one is bound by bandwidth, and a few at once fill the pipe
(more only split it, and hold more memory and disk). So the pool runs `workers` threads that
take any job, plus enough small-only threads to make `small_transfers` in all (README,
"Concurrency"): at most `workers` large transfers are ever in flight, and small files,
deletions and moves never wait behind them.

A job's size is what its action may move over the network, known when it is planned; the
queue keeps it beside the row (NULL for rows written by a release that did not: counted as
large, the safe side).
"""

from __future__ import annotations

from syncd.core.model import Action, ActionKind

#: A transfer at least this large takes a `workers` slot: at 1 MiB the bytes, not the round
#: trips, start to dominate on a typical link (20 ms RTT, 100 Mbit/s moves 1 MiB in ~80 ms).
LARGE = 1 << 20

_MOVES_NOTHING = frozenset({ActionKind.DELETE_LOCAL, ActionKind.DELETE_REMOTE, ActionKind.RECORD,
                            ActionKind.FORGET, ActionKind.FAIL})


def transfer_size(action: Action) -> int:
    """The bytes `action` may move over the network, at most: the upload's local file, the
    download's remote version, the larger side of a conflict or comparison (either may move),
    0 for work that moves no content (a remote that cannot move a file sends a rename as an
    upload: the local size)."""
    if action.kind in _MOVES_NOTHING:
        return 0
    sizes = [f.size for f in (action.local, action.remote, *action.racing) if f is not None]
    if action.kind in (ActionKind.UPLOAD, ActionKind.RENAME):
        sizes = [action.local.size] if action.local is not None else sizes
    elif action.kind is ActionKind.DOWNLOAD:
        sizes = [action.remote.size] if action.remote is not None else sizes
    return max(sizes, default=0)

