"""Attacks on `syncd serve` from outside, as a hostile client makes them (SPEC, "safe to expose").

Each test reproduces one finding of the security review against a real `syncd serve`
subprocess, with raw sockets for slow and hostile clients and httpx for ordinary ones, and
asserts the guarantee the service gives instead: a clean 4xx refusal (an envelope whose
message carries no Python exception text), the server's peak RSS under 200 MB, `/health`
answering within 1 s throughout, no traceback in the log, and every `ok` file downloading to
bytes whose sha256 is its hashcode.

Attacks that have a size come in two scales: `short` runs by default (small sizes, timeouts
of 2 s on one server shared by the module), `full` under `-m adversarial` reproduces the
finding at the sizes in the report (default timeouts, 50 M parts, 600 MB of form fields, a
200 MiB JSON body, 1,100 half-sent requests under `ulimit -n 1024`). Every attack records a
row (peak RSS, worst `/health`, outcome) before asserting: the table printed at the end of the
run describes the server either way. `SYNCD_ATTACKS_BASELINE=1` runs the module against a
build that lacks the newer `serve` options (they are dropped).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.server.signing import sign
from tests.support.attack import (
    BASELINE,
    FORM_END,
    FORM_TYPE,
    Api,
    AttackServer,
    GiB,
    HealthMonitor,
    MiB,
    Push,
    Raw,
    Timer,
    Watch,
    chunked,
    form,
    form_field,
    holds_open,
    part_form_head,
    push,
    refusal_problem,
    request_head,
    server_has_read,
    sha256,
    start_serve,
    trickle,
    upload_params,
    wait_until,
)

SCALES = [pytest.param("short"), pytest.param("full", marks=pytest.mark.adversarial)]
SHORT_TIMEOUT = 2.0  # --header-timeout / --body-timeout of the shared server
DEFAULT_TIMEOUT = 20.0  # the defaults of --header-timeout / --body-timeout
MARGIN = 3.0  # how late after its deadline a server may act
EARLY = 16 * MiB  # a refusal "before reading it all": at most this much sent (socket buffers included)
# The full-size memory attacks run the server under an address-space cap, so that a server that
# does try to hold it all fails fast instead of taking the machine's memory.
MEMORY_CAP = 2 * GiB if BASELINE else 4 * GiB
INT64_OVER = 2**63  # one past the largest SQLite integer


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackServer]:
    """One server for the attacks that need no special options (short timeouts for the slow ones)."""
    timeout = str(int(SHORT_TIMEOUT))
    server = start_serve(tmp_path_factory.mktemp("shared") / "data", "--header-timeout", timeout,
                         "--body-timeout", timeout)
    yield server
    server.stop()


@pytest.fixture
def server(shared: AttackServer) -> AttackServer:
    """The shared server, started again if an earlier attack killed or froze it."""
    if not shared.healthy(timeout=5):
        shared.kill()
        shared.start()
    return shared


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(server: AttackServer, user: str) -> Iterator[Api]:
    client = Api(server.url, user)
    yield client
    client.close()


@contextmanager
def own_server(
    data: Path, *options: str, nofile: int | None = None, memory: int | None = None
) -> Iterator[AttackServer]:
    server = start_serve(data, *options, nofile=nofile, memory=memory)
    try:
        yield server
    finally:
        server.stop(timeout=15)


@contextmanager
def slow_client_server(
    scale: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[AttackServer, float]]:
    """(server, its header/body timeout): the shared one (2 s) or, full scale, one with the defaults."""
    if scale == "short":
        yield request.getfixturevalue("server"), SHORT_TIMEOUT
    else:
        with own_server(tmp_path / "data") as server:
            yield server, DEFAULT_TIMEOUT


@contextmanager
def memory_attack_server(scale: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AttackServer]:
    """The shared server for the short scale; for the full one, a server of its own under the
    memory cap (killed afterwards: it may be frozen)."""
    if scale == "short":
        yield request.getfixturevalue("server")
        return
    server = start_serve(tmp_path / "data", memory=MEMORY_CAP)
    try:
        yield server
    finally:
        server.kill()


def message(answer: httpx.Response) -> str:
    try:
        doc = answer.json()
    except ValueError:
        return answer.text[:80]
    return str(doc.get("message") or doc.get("data"))[:80] if isinstance(doc, dict) else str(doc)[:80]


def describe(answer: httpx.Response) -> str:
    return f"{answer.status_code} {message(answer)}"


def accepted(answer: httpx.Response) -> bool:
    return answer.status_code == 200 and answer.json().get("code") == 0


def parts_on_disk(server: AttackServer) -> set[str]:
    """The multipart upload files in the data dir (`parts/`; empty if the layout has none)."""
    parts = server.data / "parts"
    return set(os.listdir(parts)) if parts.is_dir() else set()


# -- 1: an upload of millions of one-byte parts --------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_an_upload_of_millions_of_one_byte_parts_is_refused_at_init(
    scale: str, request: pytest.FixtureRequest, tmp_path: Path, user: str
) -> None:
    """`part_size = 1` makes ceil(size / part_size) parts; past `--max-parts` (10,000) the init is
    refused naming `part_size`, before any per-part bookkeeping (the finding: completing such an
    upload froze the loop for 19 s at 5.8 GB, its status was 169 MB of JSON)."""
    size = 200_000 if scale == "short" else 50_000_000
    with memory_attack_server(scale, request, tmp_path) as server:
        with Api(server.url, user, timeout=60) as api, Watch(f"1 init {size:_} one-byte parts [{scale}]", server) as w:
            init = api.init(size, 1)
            w.outcome = f"init {describe(init)}"
            if accepted(init):  # what the finding did next: complete, then ask for the status
                file_id = int(init.json()["data"])
                w.outcome += f"; complete {timed(lambda: api.complete(file_id, timeout=60))}"
                w.outcome += f"; status {timed(lambda: api.status(file_id, timeout=60), size_of_body=True)}"
                if server.healthy(timeout=5):
                    api.abort(file_id)
        problem = refusal_problem(init.status_code, init.content, names=("part_size",), allowed=(400,))
        assert problem is None, f"init of {size} one-byte parts: {problem}"
        w.check()


def timed(call: Callable[[], httpx.Response], *, size_of_body: bool = False) -> str:
    """What a request got and how long it took, or how it failed."""
    t = Timer()
    try:
        answer = call()
    except httpx.TimeoutException:
        return f"no answer in {t.since():.0f} s (froze; server killed)"
    except httpx.TransportError as exc:
        return f"{type(exc).__name__} after {t.since():.1f} s (server died?)"
    size = f", {len(answer.content) / MiB:.1f} MB of JSON" if size_of_body else ""
    return f"{answer.status_code} after {t.since():.1f} s{size}"


# -- 2: slow and silent clients ------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_a_silent_connection_is_cut(scale: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A client that connects and says nothing is hung up on after `--header-timeout`."""
    with slow_client_server(scale, request, tmp_path) as (server, timeout):
        with Watch(f"2 silent connection [{scale}]", server) as w, Raw(server.port) as raw:
            t = Timer()
            cut = raw.wait_closed(t.at(timeout + MARGIN))
            w.outcome = f"cut after {t.since():.1f} s" if cut else f"still open after {t.since():.0f} s"
        assert cut, f"a silent connection is still open {timeout + MARGIN:.0f} s later (--header-timeout {timeout:.0f})"
        w.check()


@pytest.mark.parametrize("scale", SCALES)
def test_a_request_line_trickled_byte_by_byte_is_cut(
    scale: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Headers must be complete within `--header-timeout`, however steadily the bytes come."""
    interval = 0.1 if scale == "short" else 1.0
    with slow_client_server(scale, request, tmp_path) as (server, timeout):
        head = request_head("GET", "/health", extra={"X-Padding": "p" * 300})
        with Watch(f"2 request line at 1 byte/{interval:g} s [{scale}]", server) as w, Raw(server.port) as raw:
            t = Timer()
            cut = trickle(raw, head, interval=interval, deadline=t.at(timeout + MARGIN))
            w.outcome = (f"cut after {t.since():.1f} s ({raw.sent} bytes)" if cut
                         else f"still open after {t.since():.0f} s ({raw.sent} bytes)")
        assert cut, f"a trickled request line is still being read {timeout + MARGIN:.0f} s later"
        w.check()


@pytest.mark.parametrize("scale", SCALES)
def test_a_body_trickled_byte_by_byte_is_cut(
    scale: str, request: pytest.FixtureRequest, tmp_path: Path, user: str
) -> None:
    """The body must keep arriving: at 1 byte per interval (far below 500 bytes/s) the upload is
    hung up on about `--body-timeout` after it began."""
    interval = 0.1 if scale == "short" else 1.0
    with slow_client_server(scale, request, tmp_path) as (server, timeout):
        content = b"t" * 10_000
        body = form(("params", json.dumps(upload_params("slow.bin", len(content), None)).encode(), None),
                    ("file", content, "slow.bin"))
        start = body.index(content)
        head = request_head("POST", "/uploadSimpleFile", user=user, length=len(body), content_type=FORM_TYPE)
        with Watch(f"2 body at 1 byte/{interval:g} s [{scale}]", server) as w, Raw(server.port) as raw:
            raw.send(head + body[:start])
            t = Timer()
            cut = trickle(raw, body[start:], interval=interval, deadline=t.at(timeout + MARGIN + 1))
            w.outcome = (f"cut after {t.since():.1f} s" if cut else f"still open after {t.since():.0f} s")
        assert cut, f"a trickled body is still being read {timeout + MARGIN + 1:.0f} s later"
        w.check()


HALF_SENT = b"POST /uploadSimpleFile HTTP/1.1\r\nHost: 127.0.0.1\r\nX-User-Id: attacker\r\nContent-Le"


@pytest.mark.parametrize("scale", SCALES)
def test_half_sent_requests_beyond_the_descriptor_limit(scale: str, tmp_path: Path) -> None:
    """More half-sent requests than the server has file descriptors: it keeps serving the
    connections it has (a kept-alive `/health` answers within 1 s), does not flood its log with
    "Too many open files", cuts them all after `--header-timeout`, then takes new connections."""
    nofile, count, timeout = (256, 300, SHORT_TIMEOUT) if scale == "short" else (1024, 1100, DEFAULT_TIMEOUT)
    options = ["--header-timeout", str(int(timeout))] if scale == "short" else []
    with own_server(tmp_path / "data", *options, nofile=nofile) as server:
        conns: list[Raw] = []
        fresh = HealthMonitor(server, keepalive=False)
        try:
            with Watch(f"2 {count} half-sent requests, nofile {nofile} [{scale}]", server, keepalive=True) as w:
                assert wait_until(lambda: w.monitor.probes > 0, 5), "the kept-alive /health never answered"
                fresh.start()
                t = Timer()
                for _ in range(count):
                    raw = Raw(server.port, timeout=10)
                    raw.send(HALF_SENT)
                    conns.append(raw)
                opened = t.since()
                deadline = t.at(2 * timeout + 2 * MARGIN + 5)
                open_left = wait_all_closed(conns, deadline, flood=lambda: w.log_growth() > 64 * MiB)
                cut_after = t.since()
                fresh.stop()
                emfile = server.log_count(b"Too many open files", w.log_start)
                w.outcome = (f"{count - open_left}/{count} cut after {cut_after:.0f} s (opened in {opened:.1f} s); "
                             f"fresh /health worst {fresh.worst:.1f} s; log +{w.log_growth() / MiB:.1f} MB, "
                             f"{emfile} 'Too many open files'")
                after = Timer()
                healthy = open_left == 0 and server.healthy(timeout=1.0) and after.since() <= 1.0
                w.outcome += "; then /health ok" if healthy else "; then /health did not answer in 1 s"
        finally:
            fresh.stop()
            for raw in conns:
                raw.close()
        assert open_left == 0, f"{open_left} of {count} half-sent requests still open after {cut_after:.0f} s"
        assert w.log_growth() < MiB, f"the log grew by {w.log_growth() / MiB:.1f} MB ({emfile} 'Too many open files')"
        assert healthy, "after the half-sent requests were cut, a new connection's /health did not answer in 1 s"
        w.check()


def wait_all_closed(conns: list[Raw], deadline: float, flood: Callable[[], bool]) -> int:
    """Wait until the server has hung up on every connection (or `deadline`, or `flood()`); how many are left."""
    selector = selectors.DefaultSelector()
    left = 0
    for raw in conns:
        if not raw.closed:
            selector.register(raw.sock, selectors.EVENT_READ, raw)
            left += 1
    try:
        while left and time.monotonic() < deadline and not flood():
            for key, _ in selector.select(timeout=0.5):
                raw = key.data
                raw.poll(0)
                if raw.closed:
                    selector.unregister(raw.sock)
                    left -= 1
    finally:
        selector.close()
    return left


@pytest.mark.parametrize("scale", SCALES)
def test_sigterm_finishes_while_a_client_trickles_a_body(scale: str, tmp_path: Path, user: str) -> None:
    """SIGTERM stops the server within `--shutdown-timeout` even while a client trickles an upload."""
    shutdown, interval = (2.0, 0.2) if scale == "short" else (10.0, 1.0)
    options = ["--body-timeout", "300"] + (["--shutdown-timeout", str(int(shutdown))] if scale == "short" else [])
    server = start_serve(tmp_path / "data", *options)
    stop = threading.Event()
    try:
        content = b"s" * 100_000
        body = form(("params", json.dumps(upload_params("slow.bin", len(content), None)).encode(), None),
                    ("file", content, "slow.bin"))
        start = body.index(content)
        head = request_head("POST", "/uploadSimpleFile", user=user, length=len(body), content_type=FORM_TYPE)
        with Watch(f"2 SIGTERM during a trickled body [{scale}]", server) as w, Raw(server.port) as raw:
            raw.send(head + body[:start])
            trickler = threading.Thread(
                target=trickle, args=(raw, body[start:]),
                kwargs={"interval": interval, "deadline": time.monotonic() + 300, "stop": stop}, daemon=True,
            )
            trickler.start()
            assert wait_until(lambda: raw.sent >= len(head) + start + 3 and server_has_read(raw, server.port), 10)
            w.monitor.stop()  # from here on the server is meant to go away
            assert server.proc is not None
            t = Timer()
            server.proc.send_signal(signal.SIGTERM)
            exited = wait_until(lambda: not server.alive(), shutdown + MARGIN + 2, interval=0.05)
            w.outcome = (f"exited {server.proc.returncode} after {t.since():.1f} s" if exited
                         else f"still running {t.since():.0f} s after SIGTERM (killed)")
            stop.set()
            trickler.join(5)
        assert exited, f"syncd serve still running {shutdown + MARGIN + 2:.0f} s after SIGTERM"
        assert server.proc.returncode == 0, f"exit status {server.proc.returncode}"
        w.check()
    finally:
        stop.set()
        server.kill()


# -- 4: ids are never reused -----------------------------------------------------------------------


def test_a_signed_link_to_a_deleted_file_never_serves_another_file(tmp_path: Path) -> None:
    """A link signed for a deleted file is refused, whoever uploads next, across a restart and a
    kill -9 (the finding: the owner's next upload got the same id and the old link served it)."""
    with own_server(tmp_path / "data") as server:
        owner, other = Api(server.url, "owner"), Api(server.url, "other")
        later: dict[int, bytes] = {}
        stale: list[str] = []
        with Watch("4 signed link to a deleted file", server, health=False) as w:
            owner.upload(b"first")
            doomed = owner.upload(b"private: deleted on purpose")
            links = {doomed: owner.link(doomed)}
            assert accepted(owner.delete(doomed))
            for who in (owner, other):
                data = f"{who.user}'s next upload".encode()
                later[who.upload(data)] = data

            def check_links(when: str) -> None:
                for file_id, link in links.items():
                    answer = httpx.get(link, timeout=10)
                    problem = refusal_problem(answer.status_code, answer.content)
                    served = [i for i, data in later.items() if data and data in answer.content]
                    if problem or served:
                        stale.append(f"{when}: link for {file_id} -> {problem or ''} serves {served}")

            check_links("after delete")
            server.restart()
            for who in (owner, other):
                data = f"{who.user}'s upload after a restart".encode()
                later[who.upload(data)] = data
            check_links("after a restart")
            newest = owner.upload(b"the newest, deleted before a crash")
            links[newest] = owner.link(newest)
            assert accepted(owner.delete(newest))
            server.restart(hard=True)
            for who in (owner, other):
                data = f"{who.user}'s upload after kill -9".encode()
                later[who.upload(data)] = data
            check_links("after kill -9")
            reused = sorted(set(later) & set(links))
            w.outcome = f"ids after the deleted ones: {sorted(later)}; stale links served: {len(stale)}"
            wrong = owner.audit() + other.audit()
        assert not reused, f"ids handed out again: {reused}"
        assert not stale, "\n".join(stale)
        assert not wrong, "\n".join(wrong)
        w.check()


# -- 5: a part in flight when its upload completes or goes away -----------------------------------

PART = 64 * 1024


def hold_part(
    server: AttackServer, user: str, file_id: int, number: int, first: bytes, rest: bytes
) -> tuple[Raw, bytes]:
    """Start re-sending part `number`: everything up to `first` goes now (and is read by the
    server); returns the connection and what is still to send (`rest`, then the form's end)."""
    body_head = part_form_head(file_id, number)
    tail = rest + b"\r\n" + FORM_END
    length = len(body_head) + len(first) + len(tail)
    head = request_head("POST", "/uploadFilePart", user=user, length=length, content_type=FORM_TYPE)
    raw = Raw(server.port)
    raw.send(head + body_head + first)
    assert wait_until(lambda: server_has_read(raw, server.port), 5), "the server never read the held part's start"
    # Best effort, for a server that writes parts in place: let it open the part file.
    wait_until(lambda: holds_open(server, server.data / "parts" / str(file_id)), 1)
    assert server.healthy(), "the server stopped answering"  # one more trip through its loop
    return raw, tail


def late_outcome(raw: Raw, tail: bytes) -> tuple[str, str | None]:
    """Send the held bytes; (what happened, why it is not a refusal or None)."""
    if not raw.send(tail):
        return "cut", None
    answer = raw.response(timeout=15)
    if answer is None:
        return "cut", None
    problem = refusal_problem(answer.status, answer.body)
    text = answer.body.decode("utf-8", "replace")[:80]
    return f"{answer.status} {text}", problem


def test_a_part_held_back_past_complete_changes_nothing(server: AttackServer, api: Api, user: str) -> None:
    """Part 1 is sent again, slowly; the upload completes (its hash checked) meanwhile; the held
    bytes (other bytes) then arrive: they are discarded, the `ok` file keeps its content."""
    content = os.urandom(2 * PART)
    hashcode = sha256(content)
    with Watch("5 late part after complete", server) as w:
        file_id = api.init_ok(len(content), PART, hashcode)
        api.part_ok(file_id, 1, content[:PART])
        api.part_ok(file_id, 2, content[PART:])
        raw, tail = hold_part(server, user, file_id, 1, content[: PART // 2], b"X" * (PART // 2))
        with raw:
            done = api.complete(file_id)
            late, late_problem = late_outcome(raw, tail)
        if accepted(done):
            fetched = api.download(file_id)
            intact = fetched.status_code == 200 and sha256(fetched.content) == hashcode
            w.outcome = (f"complete {describe(done)}; late part {late}; file "
                         + ("intact" if intact else f"CHANGED ({fetched.status_code}, {sha256(fetched.content)[:12]})"))
        else:
            # The server refused to complete while part 1 was in flight. Now that the other bytes
            # have landed, completing must fail the hash check; the original part makes it whole.
            again = api.complete(file_id)
            api.part_ok(file_id, 1, content[:PART])
            last = api.complete(file_id)
            fetched = api.download(file_id)
            intact = not accepted(again) and accepted(last) and sha256(fetched.content) == hashcode
            w.outcome = (f"complete while part 1 in flight {describe(done)}; late part {late}; complete with the"
                         f" other bytes {describe(again)}; after re-sending part 1 {describe(last)}, file "
                         + ("intact" if intact else "CHANGED"))
        wrong = api.audit()
    assert intact, f"the file changed or was completed with other bytes: {w.outcome}"
    if accepted(done):
        assert late_problem is None, f"the late part was not refused: {late_problem}"
    assert not wrong, "\n".join(wrong)
    w.check()


@pytest.mark.parametrize("how", ["abort", "delete"])
def test_a_part_held_back_past_abort_or_delete_touches_no_other_upload(
    how: str, server: AttackServer, api: Api, user: str
) -> None:
    """A part still arriving for an upload that was aborted (or deleted) is discarded: it is
    refused or cut, and the next upload (another user's) receives nothing from it."""
    other = Api(server.url, f"{user}-b")
    done = {"abort": "aborted", "delete": "deleted"}[how]
    mine, theirs = os.urandom(2 * PART), os.urandom(2 * PART)
    with Watch(f"5 late part after {how}", server) as w:
        doomed = api.init_ok(len(mine), PART, sha256(mine))
        api.part_ok(doomed, 2, mine[PART:])
        raw, tail = hold_part(server, user, doomed, 1, mine[: PART // 2], b"Y" * (PART // 2))
        with raw:
            gone = api.abort(doomed) if how == "abort" else api.delete(doomed)
            assert accepted(gone), describe(gone)
            next_id = other.init_ok(len(theirs), PART, sha256(theirs))
            late, late_problem = late_outcome(raw, tail)
        status = other.status(next_id).json()["data"]
        other.part_ok(next_id, 1, theirs[:PART])
        other.part_ok(next_id, 2, theirs[PART:])
        completed = other.complete(next_id)
        fetched = other.download(next_id)
        old = api.status(doomed)
        w.outcome = (f"late part {late}; next upload's parts before it sent any: {status['uploaded_parts']}; "
                     f"its complete {describe(completed)}; the {done} upload: {describe(old)}")
        wrong = other.audit() + api.audit()
    assert late_problem is None, f"the late part of an {done} upload was not refused: {late_problem}"
    assert status["uploaded_parts"] == [], f"the next upload already had parts: {status}"
    assert accepted(completed) and sha256(fetched.content) == sha256(theirs), w.outcome
    assert old.status_code == 404, f"the {done} upload is back: {describe(old)}"
    assert not wrong, "\n".join(wrong)
    w.check()
    other.close()


# -- 6: memory is bounded whatever the body ---------------------------------------------------------


def outcome_of(push_result: Push, answer: Any, total: int) -> str:
    sent = f"{push_result.sent / MiB:.1f} of {total / MiB:.0f} MB sent"
    if push_result.stopped == "cut" or answer is None:
        return f"cut after {push_result.seconds:.1f} s, {sent}"
    text = answer.body.decode("utf-8", "replace")[:70]
    return f"{answer.status} {text} ({push_result.stopped} after {push_result.seconds:.1f} s, {sent})"


def early_refusal_problem(
    push_result: Push, answer: Any, allowed: tuple[int, ...], names: tuple[str, ...] = ()
) -> str | None:
    """None when the server refused (or hung up) before `EARLY` bytes of the body were sent."""
    if push_result.stopped not in ("answered", "cut") or push_result.sent > EARLY:
        return f"not refused early: sending {push_result.stopped} after {push_result.sent / MiB:.1f} MB"
    if answer is None:
        return None  # hung up on: a client sees the refusal as a cut connection
    return refusal_problem(answer.status, answer.body, allowed=allowed, names=names)


@pytest.mark.parametrize("scale", SCALES)
def test_a_flood_of_form_fields_is_refused_early(
    scale: str, request: pytest.FixtureRequest, tmp_path: Path, user: str
) -> None:
    """Ordinary text fields, each under the per-field cap, by the thousand: the form's field count
    and total size are capped, so the upload is refused early and memory stays flat (the finding:
    600 MB of fields -> 628 MB RSS)."""
    total = 48 * MiB if scale == "short" else 600 * MiB
    value = b"v" * 60_000
    count = total // len(value)
    params = form_field("params", json.dumps(upload_params("f.bin", 1, None)).encode())
    length = len(params) + sum(len(form_field(f"field{i}", b"")) + len(value) for i in range(count)) + len(FORM_END)

    def body() -> Iterator[bytes]:
        yield params
        for i in range(count):
            yield form_field(f"field{i}", value)
        yield FORM_END

    with memory_attack_server(scale, request, tmp_path) as server:
        head = request_head("POST", "/uploadSimpleFile", user=user, length=length, content_type=FORM_TYPE)
        with Watch(f"6 {count} form fields, {total / MiB:.0f} MB [{scale}]", server) as w, Raw(server.port) as raw:
            raw.send(head)
            pushed = push(raw, body(), deadline=time.monotonic() + 60)
            answer = raw.response(timeout=60 if pushed.stopped == "done" else 10)
            w.outcome = outcome_of(pushed, answer, length)
        problem = early_refusal_problem(pushed, answer, allowed=(400, 413))
        assert problem is None, f"{w.outcome}: {problem}"
        w.check()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("scale", SCALES)
def test_a_huge_json_body_is_refused_early(
    scale: str, framing: str, request: pytest.FixtureRequest, tmp_path: Path, user: str
) -> None:
    """A JSON endpoint reads at most 64 KiB of body: a bigger one is refused with 413 before it
    is read (the finding: a 200 MiB body -> 655 MB RSS), announced or chunked."""
    size = 32 * MiB if scale == "short" else 200 * MiB
    prefix, suffix = b'{"file_id": 1, "pad": "', b'"}'
    pad = size - len(prefix) - len(suffix)
    block = b"a" * (256 * 1024)

    def body() -> Iterator[bytes]:
        yield prefix
        for start in range(0, pad, len(block)):
            yield block[: min(len(block), pad - start)]
        yield suffix

    with memory_attack_server(scale, request, tmp_path) as server:
        extra = {"Content-Type": "application/json"}
        if framing == "chunked":
            head = request_head("POST", "/completeMultipartUpload", user=user, chunked=True, extra=extra)
            chunks: Iterator[bytes] = chunked(body())
        else:
            head = request_head("POST", "/completeMultipartUpload", user=user, length=size, extra=extra)
            chunks = body()
        with Watch(f"6 JSON body of {size / MiB:.0f} MiB, {framing} [{scale}]", server) as w, Raw(server.port) as raw:
            raw.send(head)
            pushed = push(raw, chunks, deadline=time.monotonic() + 60)
            answer = raw.response(timeout=60 if pushed.stopped == "done" else 10)
            w.outcome = outcome_of(pushed, answer, size)
        problem = early_refusal_problem(pushed, answer, allowed=(413,))
        assert problem is None, f"{w.outcome}: {problem}"
        w.check()


# -- 7: a damaged signing key --------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_signing_key_is_never_used(damage: str, tmp_path: Path) -> None:
    """An empty or cut-short `signing.key` never signs anything: the server either refuses to
    start, naming the file, or replaces the key, so a link forged with the damaged key is refused."""
    data = tmp_path / "data"
    server = start_serve(data)
    try:
        api = Api(server.url, "owner")
        content = b"signed content"
        file_id = api.upload(content)
        server.stop()
        key_file = data / "signing.key"
        damaged = "" if damage == "empty" else key_file.read_text().strip()[:8]
        key_file.write_text(damaged)
        with Watch(f"7 {damage} signing.key", server, health=False) as w:
            try:
                server.start()
            except AssertionError:
                w.outcome = f"refused to start (exit {server.proc.returncode if server.proc else '?'})"
            if server.alive():
                expires = int(time.time()) + 600
                signature = sign(bytes.fromhex(damaged), file_id, "owner", expires)
                query = httpx.QueryParams({"file_id": file_id, "expires": expires, "signature": signature})
                forged = f"{server.url}/signedDownload?{query}"
                answer = httpx.get(forged, timeout=10)
                real = httpx.get(api.link(file_id), timeout=10)
                key_now = key_file.read_text().strip()
                kept = "replaced" if key_now != damaged else "KEPT"
                w.outcome = (f"started; link forged with the {damage} key: {answer.status_code}; "
                             f"a fresh link: {real.status_code}; key file {kept}")
        if server.alive():
            assert answer.status_code == 403, f"a link forged with the {damage} key was served: {w.outcome}"
            assert real.status_code == 200 and real.content == content, w.outcome
            assert key_now != damaged, "the damaged key file is still in place"
        else:
            assert "signing.key" in server.log_text(w.log_start), "the refusal does not name signing.key"
        w.check()
    finally:
        server.kill()


# -- 9: a crash while an upload is merging ---------------------------------------------------------------


@pytest.mark.parametrize("how", ["merging-row", "kill-9-mid-complete"])
def test_an_upload_caught_merging_by_a_crash_is_completable_after_restart(how: str, tmp_path: Path) -> None:
    """A server killed while completing an upload leaves it, after a restart, either finished or
    back to `uploading` so that completing it again works (or cleanly gone), never stuck
    `merging` with its part file on disk."""
    with own_server(tmp_path / "data") as server:
        api = Api(server.url, "owner")
        with Watch(f"9 crash while merging ({how})", server, health=False) as w:
            if how == "merging-row":
                content = os.urandom(2 * PART)
                file_id = upload_all_parts(api, content, PART)
                server.kill()
                with closing(sqlite3.connect(server.data / "meta.db")) as db:  # what a crash mid-merge leaves
                    db.execute("UPDATE files SET status = 'merging' WHERE id = ?", [file_id])
                    db.commit()
                caught = True
            else:
                content = os.urandom(48 * MiB)
                file_id, caught = kill_while_merging(server, api, content)
            if not caught:
                w.outcome = "the complete finished before the kill could catch it merging"
                pytest.skip(w.outcome)
            server.start()
            state, how_it_ended = finish_after_crash(api, file_id, content)
            leftover = str(file_id) in parts_on_disk(server)
            w.outcome = f"after restart: {state}; {how_it_ended}" + ("; part file LEFT on disk" if leftover else "")
            wrong = api.audit()
        assert how_it_ended.startswith(("finished", "completed again", "gone")), w.outcome
        assert not leftover, f"the part file of upload {file_id} is still on disk"
        assert not wrong, "\n".join(wrong)
        w.check()


def upload_all_parts(api: Api, content: bytes, part_size: int, order: Callable[[int], list[int]] | None = None) -> int:
    file_id = api.init_ok(len(content), part_size, sha256(content))
    count = math.ceil(len(content) / part_size)
    for n in (order(count) if order else range(1, count + 1)):
        api.part_ok(file_id, n, content[(n - 1) * part_size : n * part_size])
    return file_id


def kill_while_merging(server: AttackServer, api: Api, content: bytes) -> tuple[int, bool]:
    """Complete an upload (parts sent out of order, so that the server reads it back) and kill -9
    the server as soon as its status says `merging`; (file id, caught it merging)."""
    for _ in range(3):
        file_id = upload_all_parts(api, content, 4 * MiB, order=lambda n: list(range(n, 0, -1)))
        finished = threading.Event()

        def complete(target: int = file_id, done: threading.Event = finished) -> None:
            with suppress(httpx.HTTPError):
                api.complete(target)
            done.set()

        watcher = Api(server.url, api.user, timeout=5)
        thread = threading.Thread(target=complete, daemon=True)
        thread.start()
        caught = False
        try:
            while not finished.is_set():
                try:
                    if watcher.status(file_id).json()["data"]["status"] == "merging":
                        server.kill()
                        caught = True
                        break
                except httpx.HTTPError:
                    break
        finally:
            watcher.close()
        thread.join(10)
        if caught:
            return file_id, True
    return file_id, False


def finish_after_crash(api: Api, file_id: int, content: bytes) -> tuple[str, str]:
    """(the upload's state after the restart, how it ended) - completing it again if it asks to."""
    answer = api.status(file_id)
    if answer.status_code == 404:
        return "404", "gone (the client starts over)"
    state = answer.json()["data"]["status"]
    if state == "ok":
        ok = sha256(api.download(file_id).content) == sha256(content)
        return state, "finished at start" if ok else "WRONG BYTES: finished at start with other bytes"
    completed = api.complete(file_id)
    resent = ""
    if not accepted(completed) and state == "uploading":  # resend what it says is missing, then again
        status = api.status(file_id).json()["data"]
        part_size = int(status["part_size"])
        for n in status["remaining_parts"]:
            api.part(file_id, n, content[(n - 1) * part_size : n * part_size])
        resent = f" after resending parts {status['remaining_parts']}"
        completed = api.complete(file_id)
    fetched = api.download(file_id)
    if accepted(completed) and sha256(fetched.content) == sha256(content):
        return state, "completed again" + resent
    return state, f"STUCK: complete {describe(completed)}, download {describe(fetched)}"


# -- 11: out-of-range integers, deep nesting, exception text ------------------------------------------


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _simple_upload(api: Api, params: bytes, content: bytes = b"x") -> httpx.Response:
    body = form(("params", params, None), ("file", content, "f.bin"))
    return api.client.post("/uploadSimpleFile", content=body, headers={"Content-Type": FORM_TYPE})


def _init_body(api: Api, **fields: Any) -> httpx.Response:
    return api.client.post("/initMultipartUploadFile",
                           json={**upload_params("m.bin", 100, None), "part_size": 10, **fields})


@dataclass(frozen=True)
class Case:
    name: str
    send: Callable[[Api, int], httpx.Response]  # (client, an upload in progress) -> answer
    names: tuple[str, ...] = ()  # the message names one of these
    allowed: tuple[int, ...] = (400,)


# A size past the range may be refused as out of range (400 naming `size`) or as over the size
# limit (413, "... larger than the limit ...").
SIZE_NAMES = ("size", "larger than")

CASES = [
    Case("file_id=2**63 in a query", lambda a, _: a.client.get("/downloadFile", params={"file_id": INT64_OVER}),
         ("file_id",)),
    Case("file_id=-1 in a query", lambda a, _: a.status(-1), ("file_id",)),
    Case("file_id=2**63 in JSON", lambda a, _: a.complete(INT64_OVER), ("file_id",)),
    Case("file_id=10**30 in JSON", lambda a, _: a.abort(10**30), ("file_id",)),
    Case("file_id=-5 in JSON", lambda a, _: a.complete(-5), ("file_id",)),
    Case("file_id=2**63 in part params", lambda a, _: a.part(INT64_OVER, 1, b"x"), ("file_id",)),
    Case("part_number=2**63", lambda a, up: a.part(up, INT64_OVER, b"x"), ("part_number",)),
    Case("file_id=2**63 in a signed link", lambda a, _: a.client.get(
        "/signedDownload", params={"file_id": INT64_OVER, "expires": 1, "signature": "00"}), ("file_id",)),
    Case("offset=2**63", lambda a, _: a.client.get(
        "/listChatFiles", params={"chat_id": "c", "offset": INT64_OVER}), ("offset",)),
    Case("offset=10**30", lambda a, _: a.client.get(
        "/listChatFiles", params={"chat_id": "c", "offset": 10**30}), ("offset",)),
    Case("page_number=2**62", lambda a, _: a.client.get(
        "/listDirectories", params={"page_number": 2**62, "page_size": 10}), ("page_number",)),
    Case("page_number=10**20", lambda a, _: a.client.get(
        "/listFilesInDirectory", params={"directory_id": 1, "page_number": 10**20}), ("page_number",)),
    Case("directory_id=2**63 in a query", lambda a, _: a.client.get(
        "/listFilesInDirectory", params={"directory_id": INT64_OVER}), ("directory_id",)),
    Case("directory_id=2**63 in biz_params", lambda a, _: _init_body(
        a, biz="knowledgeBase", biz_params={"directory_id": INT64_OVER}), ("directory_id",)),
    Case("size=2**63 at init", lambda a, _: a.init(INT64_OVER, 5 * MiB), SIZE_NAMES, (400, 413)),
    Case("size=2**63 in a simple upload", lambda a, _: _simple_upload(
        a, json.dumps(upload_params("f.bin", INT64_OVER, None)).encode()), SIZE_NAMES, (400, 413)),
    Case("part_size=2**63", lambda a, _: a.init(100, INT64_OVER), ("part_size",)),
    Case("JSON nested 64 deep", lambda a, _: _init_body(a, biz_params={"chat_id": "c", "deep": json.loads(_deep(64))})),
    Case("JSON body nested 100,000 deep", lambda a, _: a.client.post(
        "/completeMultipartUpload", content=b'{"file_id": ' + _deep(100_000) + b"}",
        headers={"Content-Type": "application/json"}), allowed=(400, 413)),  # 200 KB: also over the body cap
    Case("params field nested 30,000 deep", lambda a, _: _simple_upload(a, b'{"filename": ' + _deep(30_000) + b"}")),
    Case("malformed multipart body", lambda a, _: a.client.post(
        "/uploadSimpleFile", content=b"garbage--" + FORM_END, headers={"Content-Type": FORM_TYPE})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_out_of_range_input_is_a_clean_400(case: Case, server: AttackServer, api: Api) -> None:
    """Integers past SQLite's range, negative ids, JSON nested past 32 levels, a broken form: a 400
    naming the field, without Python exception text, and no traceback in the log (the finding:
    500s with tracebacks)."""
    in_progress = api.init_ok(100, 10)
    with Watch(f"11 {case.name}", server) as w:
        answer = case.send(api, in_progress)
        w.outcome = describe(answer)
    problem = refusal_problem(answer.status_code, answer.content, names=case.names, allowed=case.allowed)
    assert problem is None, problem
    w.check()


# -- 12: abandoned uploads expire; no 10 TB uploads --------------------------------------------------------


def test_an_abandoned_upload_expires_with_its_part_file(tmp_path: Path) -> None:
    """With `--upload-ttl 2`, an upload left `uploading` is deleted with its part file within
    ttl + one sweep; an upload that keeps receiving parts meanwhile completes; `ok` files stay."""
    ttl = 2.0
    with own_server(tmp_path / "data", "--upload-ttl", str(int(ttl))) as server:
        api = Api(server.url, "owner")
        with Watch("12 abandoned upload, --upload-ttl 2", server) as w:
            kept = api.upload(b"an ok file is never expired")
            idle = api.init_ok(2 * PART, PART)
            api.part_ok(idle, 1, os.urandom(PART))
            assert idle in {f["id"] for f in api.files()}, "an upload in progress is not listed"
            part, count = 1024, 30
            active_content = os.urandom(part * count)
            active = api.init_ok(len(active_content), part, sha256(active_content))
            sent = 0
            t = Timer()
            deadline = t.at(ttl + min(ttl / 4, 60) + 2 * MARGIN)
            gone = False
            while not gone and time.monotonic() < deadline:
                if sent < count and t.since() >= sent * ttl / 4:  # keep the active one busy
                    api.part_ok(active, sent + 1, active_content[sent * part : (sent + 1) * part])
                    sent += 1
                gone = idle not in {f["id"] for f in api.files()}
                if not gone:
                    time.sleep(0.1)  # polling a condition
            expired_after = t.since()
            for n in range(sent + 1, count + 1):
                api.part_ok(active, n, active_content[(n - 1) * part : n * part])
            completed = api.complete(active)
            leftover = str(idle) in parts_on_disk(server)
            w.outcome = (f"idle upload {'expired after' if gone else 'still there after'} {expired_after:.1f} s"
                         f"{'; its part file LEFT' if leftover else ''}; active upload complete {describe(completed)}")
            wrong = api.audit()
            kept_ok = api.download(kept).status_code == 200
        assert gone, f"an upload idle for {expired_after:.0f} s (ttl {ttl:.0f} s) is still there"
        assert api.status(idle).status_code == 404
        assert not leftover, "the expired upload's part file is still on disk"
        assert accepted(completed), f"an upload receiving parts every {ttl / 4} s was expired: {describe(completed)}"
        assert kept_ok and not wrong, "\n".join(wrong) or "the ok file is gone"
        w.check()


def test_a_ten_terabyte_upload_is_refused_at_init(server: AttackServer, api: Api) -> None:
    """Without `--max-upload-size`, the default limit (10 GiB) still applies: a 10 TB init is
    refused and no (sparse) part file is created."""
    before = parts_on_disk(server)
    with Watch("12 init of a 10 TB upload", server) as w:
        answer = api.init(10 * 10**12, 2 * GiB)
        created = parts_on_disk(server) - before
        sizes = [os.stat(server.data / "parts" / name).st_size for name in created]
        w.outcome = describe(answer) + (f"; part file of {max(sizes) / 1e12:.0f} TB (sparse) created" if sizes else "")
        if accepted(answer):
            api.abort(int(answer.json()["data"]))
    problem = refusal_problem(answer.status_code, answer.content, allowed=(400, 413))
    assert problem is None, problem
    assert not created, f"part files created: {created}"
    w.check()


# -- 13: a simple upload past its declared size ------------------------------------------------------------


def test_a_simple_upload_is_refused_once_it_passes_its_declared_size(server: AttackServer, user: str) -> None:
    """`params` says `size: 10`; the file that follows is 64 MiB: the upload is refused as soon as
    the bytes pass 10, not after writing them all out."""
    total = 64 * MiB
    params = form_field("params", json.dumps(upload_params("f.bin", 10, None)).encode())
    file_head = form_field("file", b"", "f.bin")[:-2]
    block = b"z" * (256 * 1024)
    length = len(params) + len(file_head) + total + 2 + len(FORM_END)

    def body() -> Iterator[bytes]:
        yield params + file_head
        for _ in range(total // len(block)):
            yield block
        yield b"\r\n" + FORM_END

    head = request_head("POST", "/uploadSimpleFile", user=user, length=length, content_type=FORM_TYPE)
    with Watch("13 simple upload: size 10, 64 MiB sent", server) as w, Raw(server.port) as raw:
        raw.send(head)
        pushed = push(raw, body(), deadline=time.monotonic() + 60)
        answer = raw.response(timeout=60 if pushed.stopped == "done" else 10)
        w.outcome = outcome_of(pushed, answer, length)
    problem = early_refusal_problem(pushed, answer, allowed=(400, 413))
    assert problem is None, f"{w.outcome}: {problem}"
    w.check()


# -- 14: who chooses the host of a signed URL ------------------------------------------------------------------

HOSTILE_HEADERS = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-For": "203.0.113.9",
    "Forwarded": "for=203.0.113.9;host=evil.example;proto=https",
}


def test_signed_links_start_with_the_public_url(tmp_path: Path) -> None:
    """With `--public-url`, signed links start with it whatever the Host and X-Forwarded-* headers
    say, and the link works."""
    public = "https://files.example.org/base"
    with own_server(tmp_path / "data", "--public-url", public) as server:
        api = Api(server.url, "owner")
        content = b"public content"
        file_id = api.upload(content)
        with Watch("14 --public-url vs Host/X-Forwarded-*", server) as w:
            link = api.link(file_id, headers={"Host": "evil.example", **HOSTILE_HEADERS})
            w.outcome = f"link {link[:60]}"
            works = None
            if link.startswith(public + "/"):
                works = httpx.get(server.url + link[len(public):], timeout=10)
        assert link.startswith(public + "/") and "evil" not in link, f"signed link {link}"
        assert works is not None and works.status_code == 200 and works.content == content
        w.check()


def test_forwarded_headers_do_not_choose_the_link(server: AttackServer, api: Api) -> None:
    """Without `--public-url`, X-Forwarded-* and Forwarded headers are ignored: the link is on the
    host and scheme the request came to."""
    file_id = api.upload(b"content")
    with Watch("14 X-Forwarded-* without --public-url", server) as w:
        link = api.link(file_id, headers=HOSTILE_HEADERS)
        w.outcome = f"link {link[:60]}"
    assert link.startswith(server.url + "/"), f"signed link {link} (the request came to {server.url})"
    w.check()


@pytest.mark.parametrize("host", ["evil.example/steal?x=", "user@evil.example", "evil.example:80:80", "evil example"])
def test_a_malformed_host_header_is_refused(host: str, server: AttackServer, api: Api) -> None:
    """A Host header that is not a host[:port] gets a 400, never a link built from it."""
    file_id = api.upload(b"content")
    with Watch(f"14 Host: {host}", server) as w, Raw(server.port) as raw:
        raw.send(request_head("GET", f"/getFileDownloadUrl?file_id={file_id}&expires_in=60", host=host, user=api.user))
        answer = raw.response(timeout=10)
        w.outcome = "cut" if answer is None else f"{answer.status} {answer.body[:90].decode('utf-8', 'replace')}"
    assert answer is not None, "the server hung up without an answer"
    problem = refusal_problem(answer.status, answer.body, allowed=(400,))
    assert problem is None, problem
    w.check()


# -- a download racing a delete -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
def test_a_download_racing_a_delete_is_whole_or_a_clean_error(scale: str, server: AttackServer, api: Api) -> None:
    """A file deleted while it is being downloaded: the client gets either the whole file (200,
    every byte, the length announced) or something it can tell is not the file - a 4xx envelope,
    or a body cut short of its Content-Length. Never other bytes, never a 5xx, no traceback."""
    rounds, size = (30, MiB) if scale == "short" else (300, 16 * MiB)
    base = os.urandom(size)
    outcomes: dict[str, int] = {}
    violations: list[str] = []
    with Watch(f"download racing a delete, {rounds} x {size // MiB} MiB [{scale}]", server) as w:
        for i in range(rounds):
            content = i.to_bytes(4, "big") + base[4:]
            file_id = api.upload(content)
            if i % 3 == 0:
                seen = download_and_delete_at_once(server, api.user, file_id, content)
            else:
                seen = delete_during_download(api, file_id, content, after_first_chunk=i % 3 == 2)
            kind, _, detail = seen.partition(": ")
            outcomes[kind] = outcomes.get(kind, 0) + 1
            if kind.startswith("VIOLATION"):
                violations.append(f"round {i}: {seen}")
        w.outcome = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
        wrong = api.audit()
    assert not violations, f"{len(violations)} of {rounds}:\n" + "\n".join(violations[:10])
    assert not wrong, "\n".join(wrong)
    w.check()


def classify_download(status: int, headers: dict[str, str], body: bytes, content: bytes, *, cut: bool) -> str:
    """What a client can tell from one download: `whole`, `refused NNN`, `cut short of
    Content-Length`, or `VIOLATION ...: details`."""
    if status != 200:
        problem = refusal_problem(status, body)
        return f"refused {status}" if problem is None else f"VIOLATION HTTP {status}: {problem[:200]}"
    announced = int(headers.get("content-length", "-1"))
    if body == content and announced == len(content):
        return "whole"
    if cut and len(body) < announced:
        return "cut short of Content-Length"
    return f"VIOLATION other bytes: 200, {len(body)} bytes (announced {announced}), sha {sha256(body)[:12]}"


def download_and_delete_at_once(server: AttackServer, user: str, file_id: int, content: bytes) -> str:
    """The download request, and right behind it on another connection the delete: both reach
    the server together, the delete lands between the download's steps."""
    with Raw(server.port) as download, Raw(server.port) as delete:
        download.send(request_head("GET", f"/downloadFile?file_id={file_id}", user=user))
        delete.send(request_head("DELETE", f"/deleteFile?file_id={file_id}", user=user))
        answer = download.response(timeout=30)
        delete.response(timeout=30)
    if answer is None:
        return "cut before any answer"  # a client sees a failed request
    return classify_download(answer.status, answer.headers, answer.body, content, cut=download.closed)


def delete_during_download(api: Api, file_id: int, content: bytes, *, after_first_chunk: bool) -> str:
    """Delete the file once the download's headers (or its first chunk) are in, then read on."""
    received = bytearray()
    with Api(str(api.client.base_url), api.user) as deleter:
        try:
            with api.client.stream("GET", "/downloadFile", params={"file_id": file_id}) as answer:
                if answer.status_code != 200:
                    return classify_download(answer.status_code, dict(answer.headers), answer.read(), content,
                                             cut=False)
                if not after_first_chunk:
                    deleter.delete(file_id)
                for chunk in answer.iter_bytes(64 * 1024):
                    if not received and after_first_chunk:
                        deleter.delete(file_id)
                    received += chunk
                headers = dict(answer.headers)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            return "cut short of Content-Length" if len(received) < len(content) else "VIOLATION cut: after the file"
    return classify_download(200, headers, bytes(received), content, cut=False)
