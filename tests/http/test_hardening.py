"""Issue 16, hardening: malformed or hostile input is refused with a problem, never a 500.

Everything here talks to a real server over real sockets, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.http.helpers import assert_problem, poll, post_image, send_cut, tiny_image

#: The HTTP layer against hostile input, on SQLite and PostgreSQL as said above; storing and
#: serving on S3 are covered by the S3 variant of the other HTTP suites.
pytestmark = pytest.mark.storage_agnostic


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


# --- 2 and 8. what a client says about its file: cleaned, bounded, the same every way in ----

IETF = {"Upload-Draft-Interop-Version": "6", "Upload-Complete": "?1"}
TUS = {"Tus-Resumable": "1.0.0"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


def _image_of(response: httpx.Response) -> str:
    """The image id in a tus or IETF ``Pixdrop-Image`` header."""
    match = re.search(r'id="([^"]+)"', response.headers.get("pixdrop-image", ""))
    assert match, (response.status_code, response.headers, response.text)
    return match.group(1)


def store_with_name(
    client: httpx.Client, way: str, data: bytes, name: str, content_type: str | None = None
) -> httpx.Response:
    """Upload *data* whole as *name* (and *content_type*) through *way*; the last response."""
    if way == "native":
        fields: dict[str, Any] = {"size": len(data), "filename": name}
        if content_type is not None:
            fields["content_type"] = content_type
        created = client.post("/v1/uploads", json=fields)
        if created.status_code != 201:
            return created
        upload = created.json()["id"]
        sent = client.put(f"/v1/uploads/{upload}/chunks/0", content=data)
        assert sent.status_code == 201, sent.text
        return client.post(f"/v1/uploads/{upload}/complete")
    if way == "tus":
        metadata = f"filename {_b64(name)}"
        if content_type is not None:
            metadata += f",filetype {_b64(content_type)}"
        headers = {
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata,
            "Content-Type": "application/offset+octet-stream",
        }
        return client.post("/files/", content=data, headers=headers)
    if way == "ietf":
        quoted = quote(name.encode("utf-8", "surrogatepass"), safe="")
        headers = {**IETF, "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return client.post("/files/", content=data, headers=headers)
    if way == "multipart":  # by hand: httpx would percent-encode control characters
        body = (
            b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="'
            + name.encode()
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + data
            + b"\r\n--b0undary--\r\n"
        )
        kind = "multipart/form-data; boundary=b0undary"
        return client.post("/v1/images", content=body, headers={"Content-Type": kind})
    assert way == "query"
    return client.post("/v1/images", content=data, params={"filename": name})


def stored_filename(client: httpx.Client, way: str, response: httpx.Response) -> Any:
    assert response.status_code in (200, 201, 204), (way, response.status_code, response.text)
    image = response.json()["id"] if way in ("native", "multipart", "query") else None
    image = image or _image_of(response)
    return client.get(f"/v1/images/{image}").json()["filename"]


WAYS = ["native", "tus", "ietf", "multipart", "query"]


@pytest.mark.parametrize("way", WAYS)
def test_nul_and_controls_in_a_file_name_are_dropped(client, way) -> None:
    data = tiny_image(seed=WAYS.index(way))
    response = store_with_name(client, way, data, "a\x00b\x01\x7f.png")
    assert stored_filename(client, way, response) == "ab.png"


@pytest.mark.parametrize("way", ["native", "tus"])  # (no header can carry a NUL)
def test_nul_in_a_content_type_is_dropped(client, way) -> None:
    data = tiny_image(seed=10 + WAYS.index(way))
    response = store_with_name(client, way, data, "x.png", content_type="image/\x00png")
    stored_filename(client, way, response)  # stored, not a 500


def test_lone_surrogate_in_json_is_dropped(client) -> None:
    """JSON may escape a lone surrogate, which neither database can store as text."""
    raw = b'{"size": 10, "filename": "a\\ud800b.png", "content_type": "image/\\udfffpng"}'
    response = client.post("/v1/uploads", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (201, 400), response.text


@pytest.mark.parametrize("way", WAYS)
def test_a_file_name_of_255_bytes_after_cleaning_is_kept(client, way) -> None:
    name = "dir/" + "é" * 125 + "a.png"  # 250 + 5 bytes once the path is gone
    data = tiny_image(seed=20 + WAYS.index(way))
    response = store_with_name(client, way, data, name)
    assert stored_filename(client, way, response) == name[4:]


@pytest.mark.parametrize("way", WAYS)
def test_a_file_name_over_255_bytes_is_refused(server, client, way) -> None:
    name = "é" * 126 + "a.png"  # 257 bytes, 131 characters
    response = store_with_name(client, way, tiny_image(seed=30), name)
    body = assert_problem(
        response, 400, "field-too-long", field="filename", limit="max_filename_bytes"
    )
    assert (body["value"], body["allowed"]) == (257, 255)


@pytest.mark.parametrize("way", ["native", "tus", "ietf"])
def test_a_content_type_over_255_bytes_is_refused(client, way) -> None:
    # 256 bytes (in 131 characters where JSON can carry them: under the field's 255 characters)
    kind = "image/" + ("x" * 250 if way == "ietf" else "é" * 125)
    response = store_with_name(client, way, tiny_image(seed=40), "x.png", content_type=kind)
    assert_problem(
        response, 400, "field-too-long", field="content_type", limit="max_content_type_bytes"
    )


# (Larger than the 16 KiB head cap, max_header_size, a header is refused before the app: 431,
# tests/http/test_connections.py.)
@pytest.mark.parametrize("size", [12 * 1024, 4097])
@pytest.mark.parametrize("path", ["/files/", "/files/?ietf"])
def test_upload_metadata_over_4_kib_is_refused(client, size, path) -> None:
    value = "junk " + "A" * (size - 5)
    headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": value}
    if path.endswith("ietf"):
        headers = {**IETF, "Upload-Complete": "?0", "Upload-Metadata": value}
    response = client.post("/files/", headers=headers)
    body = assert_problem(
        response, 400, "field-too-long", field="Upload-Metadata", limit="max_upload_metadata_bytes"
    )
    assert (body["value"], body["allowed"]) == (size, 4096)


def test_upload_metadata_of_4_kib_is_accepted(client) -> None:
    value = "abc " + "A" * 4084 + ",bb AA=="
    assert len(value) == 4096
    headers = {**TUS, "Upload-Length": "10", "Upload-Metadata": value}
    response = client.post("/files/", headers=headers)
    assert response.status_code == 201, response.text
    head = client.head(response.headers["location"], headers=TUS)
    assert head.headers["upload-metadata"] == value


def test_upload_concat_over_4_kib_is_refused(client) -> None:
    urls = " ".join(f"/files/{'A' * 22}" for _ in range(200))
    response = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + urls})
    assert_problem(response, 400, "field-too-long", field="Upload-Concat")


# --- 3. DELETE of an upload racing its completion ------------------------------------------


def _blob_names(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def _staged(data_dir: Path) -> list[Path]:
    root = data_dir / "staging"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.local_disk  # counts the blobs in the data directory
def test_delete_racing_completion_has_one_clean_winner(server) -> None:
    """30 rounds of ``POST .../complete`` and ``DELETE`` at once: the DELETE wins (204, and
    nothing is stored) or the completion does (201, and the DELETE is 404 or 409); no 500,
    and no blob, staging file or record is left that nothing names."""
    data_dir = server.settings.data_dir
    outcomes: dict[str, int] = {}
    stored: set[str] = set()
    with (
        httpx.Client(base_url=server.url, timeout=60) as one,
        httpx.Client(base_url=server.url, timeout=60) as two,
        ThreadPoolExecutor(2) as pool,
    ):
        for round_ in range(30):
            data = tiny_image(width=64, height=64, seed=round_)
            upload = one.post("/v1/uploads", json={"size": len(data)}).json()["id"]
            assert one.put(f"/v1/uploads/{upload}/chunks/0", content=data).status_code == 201
            barrier = threading.Barrier(2)
            lag = (round_ % 6) * 0.002  # the DELETE a little later, up to 10 ms

            def complete(upload: str = upload, barrier: threading.Barrier = barrier) -> Any:
                barrier.wait()
                return one.post(f"/v1/uploads/{upload}/complete")

            def abort(
                upload: str = upload, barrier: threading.Barrier = barrier, lag: float = lag
            ) -> Any:
                barrier.wait()
                time.sleep(lag)
                return two.delete(f"/v1/uploads/{upload}")

            done, gone = pool.submit(complete), pool.submit(abort)
            completed, deleted = done.result(), gone.result()
            pair = (completed.status_code, deleted.status_code)
            key = f"{pair[0]}/{pair[1]}"
            outcomes[key] = outcomes.get(key, 0) + 1
            if completed.status_code == 201:
                assert deleted.status_code in (404, 409), (round_, pair, deleted.text)
                image = completed.json()
                stored.add(image["sha256"])
                assert one.get(f"/v1/images/{image['id']}").status_code == 200
            else:
                assert pair[1] == 204, (round_, pair, completed.text, deleted.text)
                assert completed.status_code in (404, 409), (round_, pair, completed.text)
            assert one.get(f"/v1/uploads/{upload}").status_code in (200, 404)
            # Whatever lost, nothing of it stays: every blob belongs to a stored image.
            assert poll(lambda: _blob_names(data_dir), lambda b: b == stored) == stored, round_
    assert poll(lambda: _staged(data_dir), lambda s: not s) == []
    print("outcomes:", outcomes)


@pytest.mark.local_disk  # counts the blobs in the data directory
def test_tus_termination_racing_completion_has_one_clean_winner(server) -> None:
    """The same race through tus: the PATCH that completes the upload and a DELETE."""
    data_dir = server.settings.data_dir
    outcomes: dict[str, int] = {}
    stored: set[str] = set()
    with (
        httpx.Client(base_url=server.url, timeout=60) as one,
        httpx.Client(base_url=server.url, timeout=60) as two,
        ThreadPoolExecutor(2) as pool,
    ):
        for round_ in range(30):
            data = tiny_image(width=64, height=64, seed=100 + round_)
            created = one.post("/files/", headers={**TUS, "Upload-Length": str(len(data))})
            url = created.headers["location"]
            barrier = threading.Barrier(2)
            lag = (round_ % 6) * 0.002

            def patch(url: str = url, data: bytes = data, b: threading.Barrier = barrier) -> Any:
                b.wait()
                headers = {
                    **TUS,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                }
                return one.patch(url, content=data, headers=headers)

            def terminate(url: str = url, b: threading.Barrier = barrier, lag: float = lag) -> Any:
                b.wait()
                time.sleep(lag)
                return two.delete(url, headers=TUS)

            done, gone = pool.submit(patch), pool.submit(terminate)
            patched, deleted = done.result(), gone.result()
            pair = (patched.status_code, deleted.status_code)
            key = f"{pair[0]}/{pair[1]}"
            outcomes[key] = outcomes.get(key, 0) + 1
            assert 500 not in pair, (round_, pair, patched.text, deleted.text)
            if patched.status_code == 204 and "pixdrop-image" in patched.headers:
                image = _image_of(patched)
                meta = one.get(f"/v1/images/{image}")
                assert meta.status_code == 200, (round_, pair)
                stored.add(meta.json()["sha256"])
            assert poll(lambda: _blob_names(data_dir), lambda b: b == stored) == stored, (
                round_,
                pair,
            )
    assert poll(lambda: _staged(data_dir), lambda s: not s) == []
    print("outcomes:", outcomes)


# --- 4. no problem body carries a server path ------------------------------------------------


def _broken_images() -> dict[str, bytes]:
    """Images cut short or damaged after a sound header, in every format libvips writes."""
    import pyvips

    photo = (pyvips.Image.black(64, 64, bands=3) + 100).cast("uchar")
    whole = {
        "avif": bytes(photo.heifsave_buffer(compression="av1")),
        "webp": bytes(photo.webpsave_buffer()),
        "tiff": bytes(photo.tiffsave_buffer()),
        "gif": bytes(photo.gifsave_buffer()),
        "png": bytes(photo.pngsave_buffer()),
        "jpeg": bytes(photo.jpegsave_buffer()),
    }
    broken = {f"truncated-{fmt}": data[: len(data) * 2 // 3] for fmt, data in whole.items()}
    for fmt, data in whole.items():
        middle = len(data) // 2
        broken[f"scrambled-{fmt}"] = data[:middle] + bytes(256) + data[middle + 256 :]
    return broken


BROKEN = _broken_images()


@pytest.mark.parametrize("way", ["one-request", "native", "tus", "blank-in-path"])
def test_no_problem_body_carries_a_server_path(server_factory, tmp_path, way) -> None:
    if way == "blank-in-path":
        server, way = server_factory(data_dir=tmp_path / "my data" / "pix drop"), "one-request"
    else:
        server = server_factory()
    client = httpx.Client(base_url=server.url, timeout=30)
    data_dir = str(server.settings.data_dir)
    seen = 0
    for name, data in BROKEN.items():
        if way == "one-request":
            response = client.post("/v1/images", content=data)
        elif way == "native":
            upload = client.post("/v1/uploads", json={"size": len(data)}).json()["id"]
            assert client.put(f"/v1/uploads/{upload}/chunks/0", content=data).status_code == 201
            response = client.post(f"/v1/uploads/{upload}/complete")
        else:
            headers = {
                **TUS,
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            }
            response = client.post("/files/", content=data, headers=headers)
        assert response.status_code != 500, (name, response.text)
        if response.status_code < 400:
            continue
        seen += 1
        text = response.text
        assert data_dir not in text, (name, text)
        for part in ("/staging/", "/tmp/", "my data"):
            assert part not in text, (name, text)
        for key, value in response.json().items():
            if key not in ("type", "instance"):
                assert "/" not in str(value).replace("image/", ""), (name, key, value)
    client.close()
    assert seen >= len(BROKEN) // 2


# --- 5. 405 lists every method the path accepts ------------------------------------------------

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allow(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/images/{image}", {"GET", "DELETE"}),
        ("/v1/images/{image}/original", {"GET", "HEAD"}),
        ("/v1/uploads/{upload}", {"GET", "DELETE"}),
        ("/files/{tus}", {"HEAD", "PATCH", "DELETE", "OPTIONS"}),
    ],
)
def test_405_allow_lists_every_method_of_the_path(client, stored, path, expected) -> None:
    upload = client.post("/v1/uploads", json={"size": 10}).json()["id"]
    tus = client.post("/files/", headers={**TUS, "Upload-Length": "10"}).headers["location"]
    target = path.format(image=stored["id"], upload=upload, tus=tus.rsplit("/", 1)[-1])
    refused = [m for m in ALL_METHODS if m not in expected]
    for method in refused:
        response = client.request(method, target, headers=TUS)
        assert response.status_code == 405, (method, target, response.status_code)
        assert _allow(response) >= expected, (method, target, response.headers.get("allow"))
        # Nothing listed is itself refused as a method.
        for listed in _allow(response) - {"DELETE"}:
            assert client.request(listed, target, headers=TUS).status_code != 405, listed


# --- 6. an abandoned append is logged as what happened: 499 --------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger("pixdrop.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _status_of(lines: list[str], method: str, path: str) -> int | None:
    for line in lines:
        parts = line.split()
        if parts[1:3] == [method, path]:
            return int(parts[3])
    return None


@pytest.mark.parametrize("kind", ["tus-patch", "tus-creation", "ietf-patch"])
def test_abandoned_append_is_logged_499(server_factory, access_lines, kind) -> None:
    server = server_factory(access_log=True)
    data = tiny_image(width=64, height=64, seed=7)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        if kind == "tus-creation":
            method, target = "POST", "/files/"
            headers = {
                **TUS,
                "Upload-Length": str(len(data) * 2),
                "Content-Type": "application/offset+octet-stream",
            }
        else:
            ietf = kind.startswith("ietf")
            created = client.post(
                "/files/",
                headers={**IETF, "Upload-Complete": "?0"}
                if ietf
                else {**TUS, "Upload-Length": str(len(data))},
            )
            assert created.status_code == 201, created.text
            method, target = "PATCH", urlsplit(created.headers["location"]).path
            headers = {
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            }
            if ietf:
                headers = {
                    **IETF,
                    "Upload-Complete": "?1",
                    "Upload-Offset": "0",
                    "Content-Type": "application/partial-upload",
                }
        send_cut(server.url, method, target, data, len(data) // 2, headers, linger=0.3)
        status = poll(lambda: _status_of(access_lines, method, target), lambda s: s is not None)
    assert status == 499, access_lines


# --- 7. multipart boundaries: RFC 2046 ----------------------------------------------------------


def _multipart(boundary: bytes, data: bytes) -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.png"'
        b"\r\nContent-Type: image/png\r\n\r\n" + data + b"\r\n--" + boundary + b"--\r\n"
    )


@pytest.mark.parametrize("length", [71, 257, 1000])
def test_multipart_boundary_over_70_characters_is_refused(client, length) -> None:
    boundary = b"b" * length
    response = client.post(
        "/v1/images",
        content=_multipart(boundary, tiny_image()),
        headers={"Content-Type": "multipart/form-data; boundary=" + boundary.decode()},
    )
    body = assert_problem(response, 400, "bad-request", limit="max_boundary")
    assert (body["value"], body["allowed"]) == (length, 70)


def test_multipart_boundary_of_70_characters_is_accepted(client) -> None:
    boundary = b"'()+_,-./:=?" + b"x" * 58
    assert len(boundary) == 70
    data = tiny_image(seed=70)
    kind = 'multipart/form-data; boundary="' + boundary.decode() + '"'
    response = client.post(
        "/v1/images", content=_multipart(boundary, data), headers={"Content-Type": kind}
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(data)


@pytest.mark.parametrize("boundary", ["a b ", "a{b}", "ä"])
def test_multipart_boundary_with_other_characters_is_refused(client, boundary) -> None:
    kind = f'multipart/form-data; boundary="{boundary}"'.encode()
    response = client.post(
        "/v1/images", content=_multipart(boundary.encode(), b"x"), headers={"Content-Type": kind}
    )
    assert_problem(response, 400, "bad-request")
