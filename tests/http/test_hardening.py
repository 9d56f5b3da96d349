"""Issue 16, hardening: malformed or hostile input is refused with a problem, never a 500.

Everything here talks to a real server over real sockets, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.http.helpers import assert_problem, post_image, tiny_image


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def stored(client) -> dict[str, Any]:
    return post_image(client, tiny_image(width=20, height=20))


# --- 1. Range ---------------------------------------------------------------------------------

#: Range values that are not RFC 9110 byte ranges (sent as latin-1 bytes: 0xB9 is ``¹``,
#: which ``str.isdigit`` accepts and ``int`` refuses).
MALFORMED_RANGES = [
    b"bytes=a-5",
    b"bytes=0x10-20",
    b"bytes=1.5-20",
    b"bytes=\xb9-5",
    b"bytes=0-\xb9",
    b"bytes=-\xb9",
    b"bytes=+1-5",
    b"bytes=1_0-20",
    b"bytes= 1 - 5",
    b"bytes=--5",
    b"bytes=0-" + b"9" * 5000,  # int() refuses more than 4300 digits
    b"bytes=-" + b"9" * 5000,
]


@pytest.mark.parametrize("header", MALFORMED_RANGES, ids=lambda h: repr(h[:24]))
def test_malformed_range_is_ignored_or_refused_never_500(client, stored, header) -> None:
    url = f"/v1/images/{stored['id']}/original"
    whole = client.get(url).content
    response = client.get(url, headers={"Range": header})
    assert response.status_code in (200, 206, 416), (response.status_code, response.text)
    if response.status_code == 200:
        assert response.content == whole
    elif response.status_code == 416:
        assert_problem(response, 416, "range-not-satisfiable")


def test_huge_positions_are_read_as_past_the_end(client, stored) -> None:
    url = f"/v1/images/{stored['id']}/original"
    whole = client.get(url).content
    response = client.get(url, headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert_problem(response, 416, "range-not-satisfiable")
    response = client.get(url, headers={"Range": "bytes=1-" + "9" * 5000})
    assert response.status_code == 206
    assert response.content == whole[1:]


def test_chunk_index_of_thousands_of_digits_is_no_such_chunk(client) -> None:
    """Sibling: ``int()`` refuses more than 4300 digits, which ``isdigit`` lets through."""
    upload = client.post("/v1/uploads", json={"size": 10}).json()
    response = client.put(
        f"/v1/uploads/{upload['id']}/chunks/{'9' * 5000}",
        content=b"x" * 10,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_problem(response, 404, "chunk-not-found")


@pytest.mark.parametrize("query", ["w=" + "9" * 5000, "q=" + "9" * 5000])
def test_variant_numbers_of_thousands_of_digits_are_refused(client, stored, query) -> None:
    """Sibling: ``w`` and ``q`` were read with ``int()`` after ``isdigit`` alone."""
    response = client.get(f"/v1/images/{stored['id']}/small?format=jpeg&{query}")
    assert_problem(response, 400, "bad-request")
