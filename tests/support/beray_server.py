"""A stand-in BeRay API server for tests, on loopback, answering what the published `beray` client expects.

`BeRayServer(root=...)` serves, on a free 127.0.0.1 port, the calls of the BeRay wire protocol (docs: the
BeRay protocol page) under `{url}/api/v1`: `POST /auth/login` (JSON; "login"), `POST /auth/token` (an
OAuth2 form; "token"), `POST /auth/logout` ("logout"), `GET /users/me` ("me"), `GET /tasks/{id}` ("task"),
`GET /tasks/{id}/files/tree?path=P` ("tree"), `GET` and `PUT /tasks/{id}/files/content?path=P` ("read",
"write"), `POST /tasks/{id}/files/download` (a zip; "zip") and `GET /tasks/{id}/stream` (server-sent
events; "stream"). Creating, listing, stopping and deleting tasks over HTTP are not served.

Each task's work folder is a directory on disk, `root/tasks/{id}`, so a test can write into it directly.
`P` is relative to the work folder (`.` or empty: the folder itself); an absolute path, a `..`, `.` or
empty component, a `\\` or a NUL gets `400 {"detail": "Invalid path"}`, and no path is ever followed
through a symlink (every component is opened with `O_NOFOLLOW` from the work folder's descriptor), so
nothing outside the work folder is read or written. A listing is one level, in the protocol page's
stand-in shape `{"name","path","type","size","modified_at"}` (`path` relative to the work folder, no
`size` on directories, symlinks and names that are not UTF-8 left out), sorted by name. Reads are
streamed with `Content-Type` (guessed from the name), `Content-Length` and `Last-Modified`; writes
(sized or chunked bodies) are streamed to a temporary file, get the server's clock as their mtime and
are renamed into place, creating missing parent folders. The stream is chunked, one chunk per event: a
`status` event first, then `files_changed` (with the paths that changed) within `poll_interval` of any
change to the work folder's (path, size, mtime) snapshot, a `: keepalive` comment every `keepalive`
seconds, and a final `DELETED` status when the task is removed. Errors are FastAPI style, `{"detail":
...}` (a list of validation errors on `422`).

Authentication: the users are `users` (email -> password). A login hands out a random bearer token,
good until `expire_tokens()` or, given `token_ttl`, until that many seconds of the server's clock have
passed; every call but the logins needs one, or gets `401 {"detail": "Not authenticated"}` with
`WWW-Authenticate: Bearer`.

Test hooks: `create_task(id)` (-> its work folder), `remove_task(id)`, `work_folder(id)`,
`write_file(id, path, data, mtime=)`, `issue_token(email)`, `expire_tokens()`, `seen()` (every request:
method, target as sent, headers), `fail_next(name, ...)` (the next request to an endpoint fails: any
status and body, after the work is done, a reset, a stall), `users` (settable: change a password), and
`advance(seconds)`, which moves the server's clock (injectable as `clock`).
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import math
import mimetypes
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from tests.support.standin import BodyError, Fault, SeenRequest, StandIn, StandInHandler, StandInServer

KiB = 1024
MiB = 1024 * KiB
_CHUNK = 64 * KiB
MAX_JSON = 1 * MiB
API = "/api/v1"
_ZIP_EPOCH = 315619200  # 1980-01-02 UTC: a zip cannot hold an earlier time
DEFAULT_USERS: Mapping[str, str] = MappingProxyType({"me@example.com": "pw"})
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks a read
_TASK_ID = r"(?P<task>[^/]+)"
_ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (re.compile(r"/auth/login"), {"POST": "login"}),
    (re.compile(r"/auth/token"), {"POST": "token"}),
    (re.compile(r"/auth/logout"), {"POST": "logout"}),
    (re.compile(r"/users/me"), {"GET": "me"}),
    (re.compile(rf"/tasks/{_TASK_ID}"), {"GET": "task"}),
    (re.compile(rf"/tasks/{_TASK_ID}/files/tree"), {"GET": "tree"}),
    (re.compile(rf"/tasks/{_TASK_ID}/files/content"), {"GET": "read", "PUT": "write"}),
    (re.compile(rf"/tasks/{_TASK_ID}/files/download"), {"POST": "zip"}),
    (re.compile(rf"/tasks/{_TASK_ID}/stream"), {"GET": "stream"}),
]
_NO_TOKEN = frozenset({"login", "token"})


def _match(route: str) -> tuple[dict[str, str], str] | None:
    """(method -> endpoint name, raw task id or "") of an API route, or None if it is not one."""
    if not route.startswith(API + "/"):
        return None
    rest = route[len(API) :]
    for pattern, methods in _ROUTES:
        found = pattern.fullmatch(rest)
        if found is not None:
            return methods, found.groupdict().get("task") or ""
    return None


class Request(SeenRequest):
    """One request the server saw."""

    @property
    def query(self) -> dict[str, list[str]]:
        """The query, decoded (`+` is a space)."""
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    @property
    def name(self) -> str:
        """What `fail_next` calls it ("login", "tree", "write", ...), or "" for anything not served."""
        found = _match(self.route)
        return found[0].get(self.method, "") if found is not None else ""


@dataclass
class _Task:
    task_id: int
    goal: str
    status: str
    folder: Path


@dataclass
class _Reply:
    status: int
    payload: object = None
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


class _HTTPError(Exception):
    """Answer `status` with `{"detail": detail}` (and `headers`)."""

    def __init__(self, status: int, detail: object, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.reply = _Reply(status, {"detail": detail}, dict(headers or {}))


def _not_authenticated() -> _HTTPError:
    return _HTTPError(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})


def _missing(where: str, name: str) -> _HTTPError:
    return _HTTPError(422, [{"type": "missing", "loc": [where, name], "msg": "Field required", "input": None}])


def parts_of(path: str) -> list[str] | None:
    """The components of a path relative to the work folder ([] for the folder itself), or None if it
    is not one: absolute, with a `..`, `.` or empty component, a backslash or a NUL."""
    if path in ("", "."):
        return []
    if path.startswith("/") or "\\" in path or "\x00" in path:
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    try:
        for part in parts:
            part.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return parts


def _utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a name on disk that is not UTF-8 (decoded with surrogateescape)
        return False
    return True


def _open_dir(folder: Path, parts: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the directory `folder/parts`, reached without following a symlink; with `create`,
    missing directories are made on the way. Raises OSError (ENOENT, ENOTDIR, ELOOP) otherwise."""
    fd = os.open(folder, _DIR_FLAGS)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _set_mtime(target: Path, when: float) -> None:
    """Set atime and mtime to `when`, in whole nanoseconds (a float would round 0.25 to 0.2499998)."""
    whole = math.floor(when)
    ns = whole * 10**9 + round((when - whole) * 1e9)  # `when - whole` is exact; `when * 1e9` is not
    os.utime(target, ns=(ns, ns))


def snapshot(folder: Path) -> dict[str, tuple[bool, int, int]]:
    """Every file and directory under `folder` (symlinks not followed): relative path -> (is a
    directory, size, mtime in ns). Entries vanishing while it is taken are left out."""
    found: dict[str, tuple[bool, int, int]] = {}
    pending: list[tuple[str, str]] = [(str(folder), "")]
    while pending:
        host, prefix = pending.pop()
        try:
            with os.scandir(host) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    rel = prefix + entry.name
                    if stat.S_ISDIR(st.st_mode):
                        found[rel] = (True, 0, st.st_mtime_ns)
                        pending.append((entry.path, rel + "/"))
                    elif stat.S_ISREG(st.st_mode):
                        found[rel] = (False, st.st_size, st.st_mtime_ns)
        except OSError:
            continue
    return found


def changed(before: Mapping[str, tuple[bool, int, int]], after: Mapping[str, tuple[bool, int, int]]) -> list[str]:
    """The paths added, removed or changed between two snapshots, sorted."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))


class BeRayServer(StandIn["Request", "Fault"]):
    """A threaded BeRay API server on loopback, keeping each task's work folder under `root/tasks`."""

    def __init__(
        self,
        *,
        root: Path,
        users: Mapping[str, str] = DEFAULT_USERS,
        token_ttl: float | None = None,
        clock: Callable[[], float] = time.time,
        keepalive: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.root = Path(root)
        self.users: dict[str, str] = dict(users)
        self.token_ttl = token_ttl
        self._start_record(clock)
        self.keepalive = keepalive
        self.poll_interval = poll_interval
        self._tasks_dir = self.root / "tasks"
        self._tmp = self.root / "tmp"
        self._tasks_dir.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._user_ids: dict[str, int] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (email, issued at)
        self._tasks: dict[int, _Task] = {}
        self._streams = 0
        self._streams_done = threading.Condition(self._lock)
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="beray-server"
        )
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self.api_url = self.url + API

    # -- the clock -------------------------------------------------------------------------------------

    # -- users and tokens ------------------------------------------------------------------------------

    def _user(self, email: str) -> dict[str, Any]:
        with self._lock:
            user_id = self._user_ids.setdefault(email, len(self._user_ids) + 1)
        return {"id": user_id, "email": email, "is_active": True}

    def issue_token(self, email: str = "me@example.com") -> str:
        """A fresh bearer token for `email` (as a login would hand out, no password asked)."""
        token = secrets.token_urlsafe(32)
        issued = self.now()
        with self._lock:
            self._tokens[token] = (email, issued)
        return token

    def expire_tokens(self) -> None:
        """Every token issued so far gets `401` from now on."""
        with self._lock:
            self._tokens.clear()

    def _holder(self, authorization: str | None) -> str | None:
        """The email whose valid token `authorization` carries, if any."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with self._lock:
            held = self._tokens.get(token.strip())
        if held is None:
            return None
        email, issued = held
        if self.token_ttl is not None and self.now() - issued >= self.token_ttl:
            return None
        return email if email in self.users else None

    def _revoke(self, authorization: str) -> None:
        with self._lock:
            self._tokens.pop(authorization.partition(" ")[2].strip(), None)

    def login(self, email: object, password: object) -> _Reply:
        known = self.users.get(email) if isinstance(email, str) else None
        if known is None or not isinstance(password, str) or not secrets.compare_digest(known, password):
            raise _HTTPError(401, "Incorrect email or password", {"WWW-Authenticate": "Bearer"})
        assert isinstance(email, str)
        token = self.issue_token(email)
        return _Reply(200, {"access_token": token, "token_type": "bearer", "user": self._user(email)})

    # -- tasks and their work folders ------------------------------------------------------------------

    def create_task(self, task_id: int, goal: str = "Write a short report", *, status: str = "RUNNING") -> Path:
        """A task with an empty work folder (kept if it is already there); -> the work folder."""
        folder = self._tasks_dir / str(task_id)
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._tasks[task_id] = _Task(task_id, goal, status, folder)
        return folder

    def remove_task(self, task_id: int) -> None:
        """The task is gone, with its work folder: calls on it get `404`, its streams end with DELETED."""
        with self._lock:
            task = self._tasks.pop(task_id, None)
        if task is not None:
            shutil.rmtree(task.folder, ignore_errors=True)

    def work_folder(self, task_id: int) -> Path:
        """The work folder of a task on disk (KeyError if there is no such task)."""
        return self._task(task_id).folder

    def _task(self, task_id: int) -> _Task:
        with self._lock:
            return self._tasks[task_id]

    def _current(self, task: _Task) -> bool:
        with self._lock:
            return self._tasks.get(task.task_id) is task

    def write_file(self, task_id: int, rel_path: str, data: bytes, *, mtime: float | None = None) -> Path:
        """Write a file into a task's work folder, as the task itself would (parents made as needed); its
        mtime is `mtime`, else the server's clock. -> the file on disk."""
        parts = parts_of(rel_path)
        if not parts:
            raise ValueError(f"not a file path: {rel_path!r}")
        folder = self.work_folder(task_id)
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        _set_mtime(target, self.now() if mtime is None else mtime)
        return target

    def task_info(self, task: _Task) -> _Reply:
        return _Reply(200, {"id": task.task_id, "goal": task.goal, "status": task.status, "tools": None, "events": []})

    def list_dir(self, task: _Task, path: str) -> _Reply:
        parts = parts_of(path)
        if parts is None:
            raise _HTTPError(400, "Invalid path")
        fd = self._locate_dir(task, parts)
        try:
            items: list[dict[str, Any]] = []
            prefix = "/".join(parts) + "/" if parts else ""
            with os.scandir(fd) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if not _utf8_name(entry.name):
                        continue
                    item: dict[str, Any] = {"name": entry.name, "path": prefix + entry.name}
                    if stat.S_ISREG(st.st_mode):
                        item.update(type="file", size=st.st_size)
                    elif stat.S_ISDIR(st.st_mode):
                        item["type"] = "directory"
                    else:
                        continue
                    item["modified_at"] = st.st_mtime_ns / 10**9  # int / int rounds once: 0.25 stays 0.25
                    items.append(item)
        finally:
            os.close(fd)
        return _Reply(200, sorted(items, key=lambda item: str(item["name"])))

    def _locate_dir(self, task: _Task, parts: list[str]) -> int:
        """A descriptor of the directory at `parts`: 404 if there is none, 400 if it is a file."""
        try:
            parent = _open_dir(task.folder, parts[:-1])
        except OSError:
            raise _HTTPError(404, "Path not found") from None
        try:
            if not parts:
                return parent
            st = _lstat_at(parent, parts[-1])
            if st is not None and stat.S_ISREG(st.st_mode):
                raise _HTTPError(400, "Path is not a directory")
            if st is None or not stat.S_ISDIR(st.st_mode):
                raise _HTTPError(404, "Path not found")
            try:
                return os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
            except OSError:
                raise _HTTPError(404, "Path not found") from None
        finally:
            if parts:
                os.close(parent)

    def open_file(self, task: _Task, path: str) -> tuple[os.stat_result, IO[bytes]]:
        parts = parts_of(path)
        if parts is None:
            raise _HTTPError(400, "Invalid path")
        if not parts:
            raise _HTTPError(404, "File not found")
        try:
            parent = _open_dir(task.folder, parts[:-1])
        except OSError:
            raise _HTTPError(404, "File not found") from None
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
        except OSError:
            raise _HTTPError(404, "File not found") from None
        finally:
            os.close(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise _HTTPError(404, "File not found")
        return st, os.fdopen(fd, "rb")

    def store(self, task: _Task, parts: list[str], temp: Path) -> None:
        """Move an uploaded temporary file to `parts` in the work folder, making missing parents."""
        if not parts:
            raise _HTTPError(400, "Path is a directory")
        try:
            parent = _open_dir(task.folder, parts[:-1], create=True)
        except OSError:
            raise _HTTPError(400, "Parent is not a directory") from None
        try:
            st = _lstat_at(parent, parts[-1])
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise _HTTPError(400, "Path is a directory")
            _set_mtime(temp, self.now())
            os.replace(temp, parts[-1], dst_dir_fd=parent)  # a symlink there is replaced, never followed
        except OSError as exc:
            raise _HTTPError(400, "Invalid path") from exc
        finally:
            os.close(parent)

    def build_zip(self, task: _Task, paths: list[str], out: IO[bytes]) -> None:
        """Write a zip of `paths` (every file under the work folder if empty) to `out`; names are
        relative to the work folder, directories are walked, symlinks left out."""
        wanted: list[list[str]] = []
        for path in paths or ["."]:
            parts = parts_of(path)
            if parts is None:
                raise _HTTPError(400, "Invalid path")
            wanted.append(parts)
        files: dict[str, tuple[list[str], os.stat_result]] = {}
        for parts in wanted:
            try:
                parent = _open_dir(task.folder, parts[:-1])
            except OSError:
                raise _HTTPError(404, "Path not found") from None
            try:
                st = os.fstat(parent) if not parts else _lstat_at(parent, parts[-1])
                if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                    raise _HTTPError(404, "Path not found")
                if stat.S_ISREG(st.st_mode):
                    files["/".join(parts)] = (parts, st)
                    continue
            finally:
                os.close(parent)
            for rel, (is_dir, _, _) in snapshot(task.folder.joinpath(*parts)).items():
                if not is_dir and _utf8_name(rel):
                    full = [*parts, *rel.split("/")]
                    files["/".join(full)] = (full, st)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                parts = files[name][0]
                try:
                    parent = _open_dir(task.folder, parts[:-1])
                    try:
                        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=parent)
                    finally:
                        os.close(parent)
                except OSError:
                    continue  # it vanished meanwhile
                with os.fdopen(fd, "rb") as source:
                    st = os.fstat(source.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    stamp = time.localtime(max(st.st_mtime, _ZIP_EPOCH))[:6]
                    info = zipfile.ZipInfo(name, date_time=stamp)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with archive.open(info, "w") as sink:
                        shutil.copyfileobj(source, sink, _CHUNK)

    # -- the record and the faults ---------------------------------------------------------------------

    def fail_next(
        self,
        name: str,
        *,
        status: int = 503,
        after: bool = False,
        reset: bool = False,
        stall: float | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next request to `name` ("login", "token", "logout", "me", "task", "tree", "read",
        "write", "stream", "zip") fail; several calls queue faults for the requests after it, first in
        first out.

        By default it is answered `status` with `body` (else `{"detail": "injected fault"}`) and `headers`
        (e.g. Retry-After), its body read and nothing done. `after`: the request takes effect first (the
        write stores, the login issues its token), then fails. `reset`: the connection is closed with a
        RST instead of an answer (after the body was read). `stall`: nothing is said for that many seconds
        (or until the server stops), then the connection is closed."""
        with self._lock:
            self._faults[name].append(Fault(status, after, reset, stall, body=body, headers=dict(headers or {})))

    # -- streams ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _streaming(self) -> Iterator[None]:
        with self._lock:
            self._streams += 1
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1
                self._streams_done.notify_all()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> BeRayServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: end open streams cleanly (their last chunk sent), end stalls, cut idle
        keep-alive connections, and join every thread."""
        self.stopping.set()
        with self._lock:
            self._streams_done.wait_for(lambda: self._streams == 0, timeout=5)
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.cut_connections()
        self._server.server_close()  # joins the handler threads
        if self._thread.ident is not None:  # it was started
            self._thread.join(timeout=10)

    def __enter__(self) -> BeRayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(StandInServer["BeRayServer"]):
    def __init__(self, address: tuple[str, int], owner: BeRayServer) -> None:
        super().__init__(address, owner, _Handler)


_BodyError = BodyError


class _Handler(StandInHandler):
    BAD_CHUNKS = "There was an error parsing the body"
    BAD_LENGTH = "Invalid Content-Length"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no delayed-ACK stall between
    server: _Server

    # -- dispatch --------------------------------------------------------------------------------------

    def _handle(self) -> None:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, self.path, headers)
        owner._note(request)
        try:
            found = _match(request.route)
            if found is None or self.command not in found[0]:
                self.drain()
                if found is None:
                    raise _HTTPError(404, "Not Found")
                raise _HTTPError(405, "Method Not Allowed", {"Allow": ", ".join(found[0])})
            name = found[0][self.command]
            fault = owner._next_fault(name)
            if fault is not None and not (fault.after and name in ("login", "token", "logout", "write")):
                self.drain()
                self._fail(fault)
                return
            reply: _Reply | None
            if name == "login":
                reply = self._login_json()
            elif name == "token":
                reply = self._login_form()
            else:
                reply = self._authorised(name, request, found[1])
            if reply is None:
                return  # answered already (a file, a zip, a stream)
            if fault is not None:
                self._fail(fault)
            else:
                self._json(reply)
        except _HTTPError as exc:
            with contextlib.suppress(_BodyError):
                if not self.drain():
                    exc.reply.close = True
            self._json(exc.reply)
        except _BodyError as exc:
            if exc.status:
                self._json(_Reply(exc.status, {"detail": exc.message}, close=True))
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _authorised(self, name: str, request: Request, raw_task: str) -> _Reply | None:
        owner = self.server.owner
        authorization = self.headers.get("Authorization")
        if owner._holder(authorization) is None:
            raise _not_authenticated()
        if name == "me":
            self.drain()
            return _Reply(200, owner._user(owner._holder(authorization) or ""))
        if name == "logout":
            self.drain()
            owner._revoke(authorization or "")
            return _Reply(200, {"message": "Successfully logged out"})
        try:
            task_id = int(raw_task)
        except ValueError:
            raise _HTTPError(
                422,
                [
                    {
                        "type": "int_parsing",
                        "loc": ["path", "task_id"],
                        "msg": "Input should be a valid integer, unable to parse string as an integer",
                        "input": raw_task,
                    }
                ],
            ) from None
        try:
            query = parse_qs(urlsplit(request.path).query, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:  # a name that is not UTF-8
            raise _HTTPError(400, "Invalid path") from None
        path = query.get("path", [None])[-1]
        if name in ("read", "write"):
            if path is None:
                raise _missing("query", "path")
            if path == "":
                raise _HTTPError(
                    422,
                    [
                        {
                            "type": "string_too_short",
                            "loc": ["query", "path"],
                            "msg": "String should have at least 1 character",
                            "input": "",
                            "ctx": {"min_length": 1},
                        }
                    ],
                )
        try:
            task = owner._task(task_id)
        except KeyError:
            raise _HTTPError(404, "Task not found") from None
        if name == "task":
            self.drain()
            return owner.task_info(task)
        if name == "tree":
            self.drain()
            return owner.list_dir(task, "." if path is None else path)
        if name == "read":
            self.drain()
            self._send_file(task, path or "")
            return None
        if name == "write":
            return self._upload(task, path or "")
        if name == "zip":
            self._send_zip(task)
            return None
        self.drain()
        self._stream(task)
        return None

    # -- the endpoints ---------------------------------------------------------------------------------

    def _login_json(self) -> _Reply:
        body = self._json_body()
        if not isinstance(body, dict):
            raise _HTTPError(
                422, [{"type": "model_attributes_type", "loc": ["body"], "msg": "Input should be an object"}]
            )
        for key in ("email", "password"):
            if key not in body:
                raise _missing("body", key)
        return self.server.owner.login(body["email"], body["password"])

    def _login_form(self) -> _Reply:
        raw = self.read_small(MAX_JSON)
        if raw is None:
            raise _HTTPError(413, "Request body too large")
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _HTTPError(400, "There was an error parsing the body") from None
        for key in ("username", "password"):
            if key not in form:
                raise _missing("body", key)
        return self.server.owner.login(form["username"][-1], form["password"][-1])

    def _json_body(self) -> object:
        raw = self.read_small(MAX_JSON)
        if raw is None:
            raise _HTTPError(413, "Request body too large")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _HTTPError(422, [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]) from None

    def _upload(self, task: _Task, path: str) -> _Reply:
        owner = self.server.owner
        parts = parts_of(path)
        if parts is None:
            raise _HTTPError(400, "Invalid path")
        fd, name = tempfile.mkstemp(dir=owner._tmp, prefix="put-")
        temp = Path(name)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), 0o644)
                for block in self._body():
                    size += len(block)
                    out.write(block)
            if not owner._current(task):
                raise _HTTPError(404, "Task not found")
            owner.store(task, parts, temp)
            return _Reply(200, {"message": "File saved", "path": path, "size": size})
        finally:
            temp.unlink(missing_ok=True)

    def _send_file(self, task: _Task, path: str) -> None:
        st, source = self.server.owner.open_file(task, path)
        with source:
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
            self.end_headers()
            if self.command == "HEAD":
                return
            left = st.st_size
            while left > 0:
                block = source.read(min(left, _CHUNK))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)
            self.wfile.flush()
            if left:
                self.close_connection = True  # it shrank meanwhile: the answer is short, so end it

    def _send_zip(self, task: _Task) -> None:
        owner = self.server.owner
        body = self._json_body()
        paths = body.get("paths", []) if isinstance(body, dict) else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise _HTTPError(
                422, [{"type": "list_type", "loc": ["body", "paths"], "msg": "Input should be a valid list"}]
            )
        with tempfile.TemporaryFile(dir=owner._tmp) as archive:
            owner.build_zip(task, paths, archive)
            size = archive.tell()
            archive.seek(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(size))
            self.send_header("Content-Disposition", f'attachment; filename="task_{task.task_id}_files.zip"')
            self.end_headers()
            shutil.copyfileobj(archive, self.wfile, _CHUNK)
            self.wfile.flush()

    def _stream(self, task: _Task) -> None:
        owner = self.server.owner
        self.close_connection = True  # one stream per connection
        with owner._streaming():
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            event_id = 0

            def send(payload: dict[str, Any] | None, event: str | None = None) -> None:
                nonlocal event_id
                if payload is None:
                    text = ": keepalive\n\n"
                else:
                    event_id += 1
                    head = f"event: {event}\n" if event else ""
                    text = f"{head}id: {event_id}\ndata: {json.dumps(payload)}\n\n"
                self._chunk(text.encode("utf-8"))

            try:
                status = {"type": "status", "task_id": task.task_id}
                before = snapshot(task.folder)  # before the first event: no change after it is missed
                send({**status, "status": task.status}, "status")
                last = time.monotonic()
                while not owner.stopping.wait(owner.poll_interval):
                    if not owner._current(task):
                        send({**status, "status": "DELETED"}, "status")
                        break
                    after = snapshot(task.folder)
                    if after != before and owner._current(task):
                        send({"type": "files_changed", "task_id": task.task_id, "paths": changed(before, after)})
                        before = after
                        last = time.monotonic()
                    elif time.monotonic() - last >= owner.keepalive:
                        send(None)
                        last = time.monotonic()
                self._chunk(b"")  # the last chunk: the stream ends cleanly
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away

    # -- bodies ----------------------------------------------------------------------------------------

    def _body(self) -> Iterator[bytes]:
        if getattr(self, "_body_read", None) is self.headers:
            return iter(())  # this request's body was read already
        self._body_read = self.headers
        return super()._body()

    # -- answers ---------------------------------------------------------------------------------------

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _fail(self, fault: Fault) -> None:
        owner = self.server.owner
        if fault.reset:
            self.reset()
            return
        if fault.stall is not None:
            owner.stopping.wait(fault.stall)
            self.close_connection = True
            return
        body = fault.body if fault.body is not None else json.dumps({"detail": "injected fault"}).encode()
        self.send_bytes(fault.status, body, {"Content-Type": "application/json", **fault.headers})

    def _json(self, reply: _Reply) -> None:
        body = json.dumps(reply.payload).encode()
        self.send_bytes(reply.status, body, {**reply.headers, "Content-Type": "application/json"}, close=reply.close)


__all__ = ["API", "DEFAULT_USERS", "BeRayServer", "Fault", "Request", "changed", "parts_of", "snapshot"]
