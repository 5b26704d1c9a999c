"""A proxy that delivers an upload late: the request a killed client had fully sent lands
after its successor already looked for it.

Proxies and load balancers that buffer request bodies (nginx does by default) receive a whole
request, then pass it on when they get to it - possibly after the client that sent it timed
out, died, and was restarted. `HoldProxy` makes that moment happen on cue: it is a `FaultProxy`
whose rule holds the first simple upload of a chosen file name (the `Hold` fault) and forwards
everything else; `release()` then delivers the held upload to the service.

    with HoldProxy(server_url) as proxy:
        proxy.hold_upload("report.txt")
        ...                      # a client uploads report.txt through proxy.url
        proxy.wait_until_held()  # the whole request arrived; the service has not seen it
        ...                      # kill the client, run another one
        proxy.release()          # now the service stores the first client's copy
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
from typing import Any

from tests.support.daemon import wait_for
from tests.support.faultproxy import Fault, FaultProxy, Hold, Seen

UPLOAD = "/uploadSimpleFile"


def upload_params(seen: Seen) -> dict[str, Any] | None:
    """The JSON `params` field of a multipart simple upload, or None for any other request."""
    if seen.method != "POST" or seen.path != UPLOAD:
        return None
    content_type = seen.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + seen.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "params":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                params = json.loads(payload)
                return params if isinstance(params, dict) else None
    return None


class HoldProxy(FaultProxy):
    """A `FaultProxy` that holds the first simple upload of a given file name until `release()`."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(upstream, host=host, port=port)
        self._target: str | None = None
        self._taken = False
        self._choice = threading.Lock()
        self.rule = self._hold_rule

    def hold_upload(self, filename: str) -> None:
        """Hold the next simple upload whose params name `filename` (one only)."""
        with self._choice:
            self._target, self._taken = filename, False

    def _hold_rule(self, seen: Seen) -> Fault | None:
        params = upload_params(seen)
        if params is None:
            return None
        with self._choice:
            if self._taken or params.get("filename") != self._target:
                return None
            self._taken = True
        return Hold()

    def wait_until_held(self, timeout: float = 20.0) -> Seen:
        """The held upload, once it has fully arrived."""
        what = f"the proxy to hold the upload of {self._target!r}"
        held: list[Seen] = wait_for(self.held, timeout=timeout, what=what)
        return held[0]


__all__ = ["HoldProxy", "upload_params"]
