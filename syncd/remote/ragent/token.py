"""The resume token of a ragent-oss upload: where its bytes went, and which keys may be orphans.

A PUT whose answer was lost (a timeout, a reset, a 5xx after the body went out) may or may not
have stored the object. Retried to the same presigned URL it lands on the same key, so nothing
is duplicated; the token keeps that URL, durably (on the queue row, reported before a byte is
sent), so a retry after a crash does the same. Once the URL has expired a fresh presign gives a
new key, and the old one may hold an orphan: the token carries it on, and it is deleted as soon
as the new upload has stored its object (SPEC, "No duplicates on ragent-oss").

A token is used only for the very upload it describes: same place, path, size and sha256.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from syncd.remote.ragent.client import Presigned

#: A presigned URL is trusted this long after it was given (the gateway's own lifetime is not
#: announced; the stand-in's is 900 s). Past it, or refused with a 403, a fresh one is asked for.
URL_TRUSTED_FOR = 600.0
_TAG = "ragent_upload"


@dataclass(frozen=True, slots=True)
class UploadToken:
    """One upload's target (`presigned`, given at `at`, a Unix time) and the keys earlier tries
    of the same upload may have left behind (`orphans`)."""

    place: str
    path: str
    size: int
    sha256: str
    presigned: Presigned
    at: float
    orphans: tuple[str, ...] = ()

    def fits(self, place: str, path: str, size: int, sha256: str | None) -> bool:
        """True when this token describes an upload of exactly this content to this path."""
        return (self.place, self.path, self.size, self.sha256) == (place, path, size, sha256)

    def usable(self, now: float) -> bool:
        """True while its URL may still be PUT to."""
        return 0 <= now - self.at < URL_TRUSTED_FOR

    def expired(self) -> UploadToken:
        """This upload once its URL is of no more use: its key joins the possible orphans."""
        return replace(self, orphans=(*self.orphans, self.presigned.key))

    def dumps(self) -> str:
        fields = {
            "place": self.place, "path": self.path, "size": self.size, "sha256": self.sha256,
            "key": self.presigned.key, "url": self.presigned.url, "headers": dict(self.presigned.headers),
            "at": self.at, "orphans": list(self.orphans),
        }
        return json.dumps({_TAG: fields}, ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> UploadToken | None:
        """The token in `text`, or None for anything else (another kind's token, damage)."""
        if not text:
            return None
        try:
            fields = json.loads(text)[_TAG]
            headers = fields["headers"]
            token = cls(
                place=fields["place"], path=fields["path"], size=fields["size"], sha256=fields["sha256"],
                presigned=Presigned(fields["key"], fields["url"], tuple(sorted(headers.items()))),
                at=float(fields["at"]), orphans=tuple(fields["orphans"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        strings = [token.place, token.path, token.sha256, token.presigned.key, token.presigned.url, *token.orphans]
        pairs = [item for pair in token.presigned.headers for item in pair]
        if not all(isinstance(s, str) for s in [*strings, *pairs]) or type(token.size) is not int:
            return None
        return token
