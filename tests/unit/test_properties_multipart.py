"""Property tests for the streaming multipart reader (``http/multipart.py``): the ``file``
part comes out byte for byte however the body is cut into pieces and whatever parts come
before it; any body is read or refused with ``BadRequest``, never another exception; the
boundary check agrees with RFC 2046 §5.1.1 read as a reference."""

from __future__ import annotations

import asyncio
import contextlib
import string
from collections.abc import AsyncIterator

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from pixdrop.errors import BadRequest
from pixdrop.http.multipart import MultipartFile, check_boundary

#: RFC 2046 §5.1.1: bchars := bcharsnospace / " ".
BCHARS_NOSPACE = string.digits + string.ascii_letters + "'()+_,-./:=?"
BOUNDARIES = st.builds(
    lambda body, last: body + last,
    st.text(alphabet=BCHARS_NOSPACE + " ", max_size=69),
    st.sampled_from(BCHARS_NOSPACE),
)
#: File bytes that look like the framing around them: line breaks and dashes.
FRAMING_LIKE = st.lists(
    st.sampled_from([b"\r\n", b"--", b"\r", b"\n", b"-", b"a", b"\r\n--"]), max_size=40
).map(b"".join)
NAMES = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=30)


def part(boundary: str, name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
    return head + data + b"\r\n"


def cut(body: bytes, sizes: list[int]) -> list[bytes]:
    pieces, at = [], 0
    for size in sizes:
        pieces.append(body[at : at + size])
        at += size
    pieces.append(body[at:])
    return [p for p in pieces if p]


async def _read(pieces: list[bytes], content_type: str) -> tuple[bytes, str | None]:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    form = MultipartFile(body(), content_type)
    await form.open()
    data = b"".join([block async for block in form.stream()])
    return data, form.filename


def read(pieces: list[bytes], content_type: str) -> tuple[bytes, str | None]:
    return asyncio.run(_read(pieces, content_type))


@given(
    BOUNDARIES,
    st.binary(max_size=3000) | FRAMING_LIKE,
    NAMES,
    st.lists(st.tuples(NAMES.filter(lambda n: n != "file"), st.binary(max_size=50)), max_size=3),
    st.lists(st.integers(min_value=1, max_value=700), max_size=8),
)
def test_the_file_part_comes_out_whole(
    boundary: str,
    data: bytes,
    filename: str,
    before: list[tuple[str, bytes]],
    sizes: list[int],
) -> None:
    delimiter = b"\r\n--" + boundary.encode()
    assume(all(delimiter not in b"\r\n" + d + b"\r\n" for d in [data, *(v for _, v in before)]))
    body = b"".join(part(boundary, name, value) for name, value in before)
    body += part(boundary, "file", data, filename) + f"--{boundary}--\r\n".encode()
    got = read(cut(body, sizes), f'multipart/form-data; boundary="{boundary}"')
    assert got == (data, filename)


@given(
    st.binary(max_size=400) | st.builds(lambda b, t: b + t, st.binary(max_size=50), st.just(b"--")),
    st.lists(st.integers(min_value=1, max_value=100), max_size=4),
)
@example(b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', [])
@example(b"--b--\r\n", [])
@example(b"", [])
def test_any_body_is_read_or_refused_as_bad_request(body: bytes, sizes: list[int]) -> None:
    with contextlib.suppress(BadRequest):
        read(cut(body, sizes), "multipart/form-data; boundary=b")


def rfc_2046_boundary(boundary: bytes) -> bool:
    text = boundary.decode("latin-1")
    return 1 <= len(text) <= 70 and all(c in BCHARS_NOSPACE + " " for c in text) and text[-1] != " "


@given(st.binary(max_size=80) | BOUNDARIES.map(str.encode))
@example(b"a" * 70)
@example(b"a" * 71)
@example(b"a ")
@example(b" a")
@example(b"")
def test_the_boundary_check_agrees_with_rfc_2046(boundary: bytes) -> None:
    if rfc_2046_boundary(boundary):
        check_boundary(boundary)
    else:
        with pytest.raises(BadRequest):
            check_boundary(boundary)
