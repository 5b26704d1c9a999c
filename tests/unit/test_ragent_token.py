"""The ragent-oss upload token: used only for its own upload, and its URL only while trusted."""

from __future__ import annotations

import pytest

from syncd.remote.ragent.client import Presigned
from syncd.remote.ragent.remote import content_type
from syncd.remote.ragent.token import URL_TRUSTED_FOR, UploadToken

TARGET = Presigned("team/0f/a b/..//ü.txt", "https://gw.example/blob/x?exp=1&sig=2", (("Content-Type", "text/plain"),))
TOKEN = UploadToken("team", "a b/ü.txt", 12, "ab" * 32, TARGET, at=1000.0, orphans=("team/old/a b/ü.txt",))


def test_a_token_round_trips_and_fits_only_its_own_upload() -> None:
    again = UploadToken.loads(TOKEN.dumps())
    assert again == TOKEN
    assert again.fits("team", "a b/ü.txt", 12, "ab" * 32)
    for other in [("other", "a b/ü.txt", 12, "ab" * 32), ("team", "b.txt", 12, "ab" * 32),
                  ("team", "a b/ü.txt", 13, "ab" * 32), ("team", "a b/ü.txt", 12, "cd" * 32),
                  ("team", "a b/ü.txt", 12, None)]:
        assert not again.fits(*other)


def test_its_url_is_trusted_for_a_while_then_its_key_joins_the_orphans() -> None:
    assert TOKEN.usable(1000.0) and TOKEN.usable(1000.0 + URL_TRUSTED_FOR - 1)
    assert not TOKEN.usable(1000.0 + URL_TRUSTED_FOR) and not TOKEN.usable(999.0)  # a clock set back
    assert TOKEN.expired().orphans == (*TOKEN.orphans, TARGET.key)


@pytest.mark.parametrize("text", [None, "", "not json", '{"memory_upload": {}}', '{"ragent_upload": {}}',
                                  '{"ragent_upload": {"place": 1}}', "[1, 2]"])
def test_anything_else_is_no_token(text: str | None) -> None:
    assert UploadToken.loads(text) is None


def test_a_token_with_a_wrong_type_inside_is_no_token() -> None:
    text = TOKEN.dumps().replace('"size": 12', '"size": "12"')
    assert UploadToken.loads(text) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("report.pdf", "application/pdf"), ("sub/dir/photo.JPG", "image/jpeg"), ("notes.txt", "text/plain"),
    ("archive.tar.gz", "application/gzip"), ("backup.tar", "application/x-tar"),
    ("no-extension", "application/octet-stream"), ("dir.d/unknown.zzz", "application/octet-stream"),
])
def test_the_content_type_is_guessed_from_the_name(name: str, expected: str) -> None:
    assert content_type(name) == expected
