"""PartHashes: the running sha256 of a multipart upload is used only when every part came once, in order."""

from __future__ import annotations

import hashlib

from syncd.server.parthash import PartHashes

PARTS = [b"alpha-", b"beta-", b"gamma"]


def send(hashes: PartHashes, file_id: int, part: int, data: bytes, *, whole: bool = True) -> None:
    hasher = hashes.hasher_for(file_id, part)
    hasher.update(data if whole else data[:2])
    if whole:
        hashes.part_done(file_id, part, hasher)


def test_parts_in_order_give_the_whole_files_sha256() -> None:
    hashes = PartHashes()
    for n, data in enumerate(PARTS, start=1):
        send(hashes, 7, n, data)
    assert hashes.take(7, len(PARTS)) == hashlib.sha256(b"".join(PARTS)).hexdigest()
    assert hashes.take(7, len(PARTS)) is None  # taken: forgotten


def test_a_failed_attempt_of_the_next_part_leaves_the_chain_intact() -> None:
    hashes = PartHashes()
    send(hashes, 1, 1, PARTS[0])
    send(hashes, 1, 2, PARTS[1], whole=False)  # the connection dropped midway
    send(hashes, 1, 2, PARTS[1])
    send(hashes, 1, 3, PARTS[2])
    assert hashes.take(1, 3) == hashlib.sha256(b"".join(PARTS)).hexdigest()


def test_anything_out_of_the_ordinary_falls_back_to_reading_the_file() -> None:
    resent, out_of_order, incomplete, unchained = PartHashes(), PartHashes(), PartHashes(), PartHashes()
    for n, data in enumerate(PARTS, start=1):
        send(resent, 1, n, data)
    send(resent, 1, 2, b"other", whole=False)  # a part written again, failing midway: bytes may differ now
    assert resent.take(1, 3) is None

    for n in (1, 3, 2):
        send(out_of_order, 1, n, PARTS[n - 1])
    assert out_of_order.take(1, 3) is None

    send(incomplete, 1, 1, PARTS[0])
    assert incomplete.take(1, 3) is None

    send(unchained, 1, 1, PARTS[0])
    unchained.part_done(1, 2, None, chained=False)  # bytes that came before the part's params
    assert unchained.take(1, 2) is None


def test_a_part_that_started_before_its_predecessor_ended_never_chains() -> None:
    # Parts 1 and 2 in flight together (a client sending parts concurrently): part 2's hasher is
    # a fresh one, so when it ends after part 1 it must break the chain, not become it.
    hashes = PartHashes()
    first, second = hashes.hasher_for(5, 1), hashes.hasher_for(5, 2)
    first.update(PARTS[0])
    second.update(PARTS[1])
    hashes.part_done(5, 1, first)
    hashes.part_done(5, 2, second)
    third = hashes.hasher_for(5, 3)
    third.update(PARTS[2])
    hashes.part_done(5, 3, third)
    assert hashes.take(5, 3) is None  # read back from the file: never a hash of some parts only
