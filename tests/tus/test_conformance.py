"""tus 1.0.0 conformance: one table row per assertion, each run against a real server.

Each ``Row`` is a request (method, path template, headers, body) and what must come back
(status, header checks). ``given`` makes the state the row needs through the API first (an
upload with some bytes, partial uploads, a final upload, a terminated one); ``then`` checks the
upload afterwards with a ``HEAD`` (e.g. that a refused chunk left the offset where it was).

Path and header templates are filled from the row's context: ``{base}`` (the server's URL),
``{files}`` (the creation URL), ``{upload}``, ``{p0}``, ``{p1}``, ``{final}`` (paths made by
``given``), ``{location}`` (the path of this row's own ``Location``), ``{unknown}`` and
``{unknown_id}`` (an upload that does not exist).

Every row also checks, unless it is an ``OPTIONS`` request, that the reply says
``Tus-Resumable: 1.0.0``, and, for every status >= 400 but ``HEAD``, that the body is an
RFC 9457 problem (``application/problem+json`` with ``status``, ``title`` and ``detail``).

``REQUIREMENTS`` names each MUST/SHOULD of the spec (and each pixdrop promise) once; rows point
at the requirement they prove, and docs/tus.md lists them with their rows.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.http.helpers import tiny_image
from tests.tus.conftest import TusServers
from tests.tus.wire import (
    ABSENT,
    ALGORITHMS,
    EXTENSIONS,
    OCTETS,
    PRESENT,
    TUS,
    Check,
    FutureDate,
    Integer,
    Matches,
    PixdropImage,
    Reply,
    UploadUrl,
    check_headers,
    checksum,
    create,
    lists,
    location_path,
    patch,
    problem_errors,
    send_chunked,
)

KiB = 1024
MAX = 1024 * KiB  # max_image_size of the table's servers: Tus-Max-Size
LENGTH = 1000
PAYLOAD = random.Random(7).randbytes(LENGTH)  # not an image
OTHER = bytes(b ^ 0xFF for b in PAYLOAD)
IMAGE = tiny_image("PNG", 64, 48, seed=3)
HALF = len(IMAGE) // 2
A, B = IMAGE[:HALF], IMAGE[HALF:]
UNKNOWN_ID = "A" * 22
ORIGIN = "https://app.example.com"
CORS = {"cors_origins": ORIGIN}
TRUSTED = {"trust_forwarded": True}
TABLE_SETTINGS: dict[str, Any] = {"max_image_size": MAX}
#: Headers a browser must be allowed to send, and to read (the contract's lists).
ALLOW_HEADERS = (
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "Upload-Concat",
    "Upload-Defer-Length",
    "Upload-Checksum",
    "X-HTTP-Method-Override",
    "Content-Type",
)
EXPOSE_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Expires",
    "Upload-Concat",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Pixdrop-Image",
    "Pixdrop-Delete-Token",
)


# --- requirements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One requirement: the extension it belongs to, MUST / SHOULD / pixdrop, what it says."""

    ext: str
    level: str
    text: str


def req(ext: str, level: str, text: str) -> Req:
    return Req(ext, level, text)


CORE, CREATION, WITH_UPLOAD, DEFER = "core", "creation", "creation-with-upload", "defer-length"
EXPIRATION, CHECKSUM, TRAILER = "expiration", "checksum", "checksum-trailer"
TERMINATION, CONCAT, UNFINISHED = "termination", "concatenation", "concatenation-unfinished"
PROXY, BROWSER, PIXDROP = "URLs and proxies", "CORS", "pixdrop"

R_VERSION = req(CORE, "MUST", "OPTIONS answers 204/200 with Tus-Version")
R_OPTIONS_IGNORE = req(CORE, "MUST", "OPTIONS ignores Tus-Resumable")
R_EXTENSION = req(CORE, "MUST", "Tus-Extension lists every supported extension")
R_MAX_SIZE = req(CORE, "SHOULD", "Tus-Max-Size states the hard size limit")
R_RESUMABLE = req(CORE, "MUST", "Tus-Resumable: 1.0.0 in every response but OPTIONS")
R_412 = req(CORE, "MUST", "Unsupported or missing Tus-Resumable: 412 with Tus-Version")
R_412_NOOP = req(CORE, "MUST", "A 412 request is not processed")
R_HEAD_OFFSET = req(CORE, "MUST", "HEAD includes Upload-Offset (even 0) and a known Upload-Length")
R_NO_STORE = req(CORE, "MUST", "HEAD responses carry Cache-Control: no-store")
R_HEAD_404 = req(CORE, "SHOULD", "HEAD of an unknown upload: 404/410/403 without Upload-Offset")
R_PATCH_204 = req(CORE, "MUST", "PATCH applies the bytes: 204 with the new Upload-Offset")
R_PATCH_415 = req(CORE, "SHOULD", "PATCH without application/offset+octet-stream: 415")
R_PATCH_409 = req(CORE, "MUST", "PATCH at the wrong Upload-Offset: 409, upload unchanged")
R_PATCH_404 = req(CORE, "SHOULD", "PATCH to an unknown upload: 404")
R_PATCH_400 = req(CORE, "pixdrop", "PATCH without a valid Upload-Offset: 400")
R_PATCH_413 = req(CORE, "pixdrop", "PATCH past Upload-Length: 413, nothing stored")
R_OVERRIDE = req(CORE, "MUST", "X-HTTP-Method-Override is the method; the real one is ignored")
R_CREATE = req(CREATION, "MUST", "POST creates: 201 with Location")
R_CREATE_400 = req(CREATION, "pixdrop", "POST without exactly one valid length header: 400")
R_DEFER_400 = req(CREATION, "SHOULD", "Upload-Defer-Length other than 1: 400")
R_CREATE_413 = req(CREATION, "MUST", "Upload-Length over the maximum: 413")
R_METADATA = req(CREATION, "MUST", "HEAD echoes Upload-Metadata as given at creation")
R_METADATA_400 = req(CREATION, "pixdrop", "Malformed Upload-Metadata: 400")
R_WITH_UPLOAD = req(WITH_UPLOAD, "MUST", "POST with a body: Upload-Offset after the bytes")
R_WITH_UPLOAD_415 = req(WITH_UPLOAD, "pixdrop", "POST body of another type: 415")
R_WITH_UPLOAD_413 = req(WITH_UPLOAD, "pixdrop", "POST body longer than Upload-Length: 413")
R_DEFER = req(DEFER, "MUST", "Upload-Defer-Length: 1 creates; HEAD says so until it is known")
R_DEFER_SET = req(DEFER, "MUST", "Upload-Length in a later PATCH fixes the length")
R_DEFER_FIXED = req(DEFER, "MUST", "Once set, the length does not change")
R_DEFER_CHECKS = req(DEFER, "pixdrop", "A PATCH length below the data: 400; over the max: 413")
R_EXPIRES_POST = req(EXPIRATION, "MUST", "POST response has Upload-Expires (RFC 7231 date)")
R_EXPIRES_PATCH = req(EXPIRATION, "MUST", "Every PATCH response has Upload-Expires")
R_EXPIRES_HEAD = req(EXPIRATION, "pixdrop", "HEAD of an unfinished upload has Upload-Expires")
R_EXPIRED = req(EXPIRATION, "SHOULD", "An expired upload: 410 (known) or 404")
R_CHECKSUM_OK = req(CHECKSUM, "MUST", "Upload-Checksum verified: 204 when it matches")
R_CHECKSUM_460 = req(CHECKSUM, "MUST", "Checksum mismatch: 460, chunk discarded, offset kept")
R_CHECKSUM_400 = req(CHECKSUM, "MUST", "Unsupported algorithm: 400, chunk discarded")
R_CHECKSUM_MALFORMED = req(CHECKSUM, "pixdrop", "Malformed Upload-Checksum: 400")
R_ALGORITHMS = req(CHECKSUM, "MUST", "OPTIONS has Tus-Checksum-Algorithm, with sha1, lower-case")
R_TRAILER = req(TRAILER, "MUST", "Upload-Checksum as a trailer of a chunked body is verified")
R_DELETE = req(TERMINATION, "MUST", "DELETE answers 204")
R_DELETE_AFTER = req(TERMINATION, "SHOULD", "After DELETE the upload URL answers 404/410")
R_PARTIAL = req(CONCAT, "MUST", "Upload-Concat: partial creates a partial upload")
R_PARTIAL_HEAD = req(CONCAT, "MUST", "HEAD of a partial has Upload-Offset and Upload-Concat")
R_PARTIAL_RAW = req(CONCAT, "SHOULD", "Partial uploads are not processed by themselves")
R_FINAL = req(CONCAT, "MUST", "Upload-Concat: final;URLs joins partials in order")
R_FINAL_HEAD = req(CONCAT, "MUST", "HEAD of a final: Upload-Concat as given, offset = length")
R_FINAL_METADATA = req(CONCAT, "MUST", "A final does not take its partials' Upload-Metadata")
R_FINAL_403 = req(CONCAT, "MUST", "PATCH to a final upload: 403, nothing modified")
R_FINAL_400 = req(CONCAT, "pixdrop", "Bad final: Upload-Length, unknown or non-partial URL: 400")
R_UNFINISHED = req(UNFINISHED, "MUST", "A final may name partials still in progress")
R_UNFINISHED_HEAD = req(UNFINISHED, "SHOULD", "HEAD of an unfinished final has no Upload-Offset")
R_LOCATION = req(PROXY, "pixdrop", "Location is absolute: the request's own scheme and host")
R_PUBLIC_URL = req(PROXY, "pixdrop", "public_url, when set, is the base of every URL")
R_FORWARDED_OFF = req(PROXY, "pixdrop", "Forwarded / X-Forwarded-* ignored unless trusted")
R_FORWARDED_ON = req(PROXY, "pixdrop", "trust_forwarded: URLs from Forwarded / X-Forwarded-*")
R_TUS_PATH = req(PROXY, "pixdrop", "tus_path moves the endpoint")
R_PREFLIGHT = req(BROWSER, "pixdrop", "cors_origins: preflights allow tus methods and headers")
R_EXPOSE = req(BROWSER, "pixdrop", "cors_origins: responses expose the tus headers")
R_CORS_OFF = req(BROWSER, "pixdrop", "No CORS headers for other origins, or by default")
R_PROBLEM = req(PIXDROP, "pixdrop", "Errors are application/problem+json (status/title/detail)")
R_INGEST = req(PIXDROP, "pixdrop", "The last byte stores the image: Pixdrop-Image (+ token)")
R_COMPLETED = req(PIXDROP, "pixdrop", "HEAD of a completed upload: Pixdrop-Image, no expiry")
R_REFUSED = req(PIXDROP, "pixdrop", "Not an image: 422 on the last byte, upload freed")
R_PARTIALS_FREED = req(
    PIXDROP, "pixdrop", "Partials are freed once their final is stored or refused"
)
R_AFTER_END = req(PIXDROP, "pixdrop", "A completed upload takes no more bytes")


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Given:
    """One tus upload made through the API: ``{upload}``."""

    length: int | None = LENGTH  # None: Upload-Defer-Length: 1
    offset: int = 0  # how many bytes of *data* to PATCH in
    data: bytes = PAYLOAD
    metadata: str | None = None
    partial: bool = False
    declare_length: bool = False  # deferred: send Upload-Length (len(data)) with the PATCH
    terminated: bool = False


@dataclass(frozen=True)
class GivenConcat:
    """Partial uploads ``{p0}``, ``{p1}``... of *parts*, and a final one (``{final}``)."""

    parts: tuple[bytes, ...] = (A, B)
    sent: tuple[int, ...] | None = None  # bytes PATCHed into each partial (default: all)
    final: bool = True
    metadata: str | None = None  # the partials' Upload-Metadata


@dataclass(frozen=True)
class Then:
    """A ``HEAD`` after the row's request, and what it must answer."""

    status: int
    expect: Mapping[str, Check | str] = field(default_factory=dict)
    path: str = "{upload}"


@dataclass(frozen=True)
class Row:
    name: str
    req: Req
    method: str
    path: str
    status: int | tuple[int, ...]
    headers: Mapping[str, str | None] = field(default_factory=dict)
    body: bytes = b""
    expect: Mapping[str, Check | str] = field(default_factory=dict)
    given: Given | GivenConcat | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    chunked: bool = False  # send the body chunked over a raw socket, with *trailers*
    trailers: Mapping[str, str] = field(default_factory=dict)
    problem: Mapping[str, Any] = field(default_factory=dict)  # extra problem fields
    mentions: str | None = None  # the problem's detail contains this (template)
    then: Then | None = None


def at(offset: int | str, **more: str) -> dict[str, str]:
    """PATCH headers: the tus content type and *offset* (plus *more*, ``_`` read as ``-``)."""
    extra = {k.replace("_", "-"): v for k, v in more.items()}
    return {"Content-Type": OCTETS, "Upload-Offset": str(offset), **extra}


def length(n: int | str, **more: str) -> dict[str, str]:
    return {"Upload-Length": str(n), **{k.replace("_", "-"): v for k, v in more.items()}}


def offset_is(n: int, **more: Check | str) -> Then:
    return Then(200, {"Upload-Offset": str(n), **more})


GONE = Then(404, {"Upload-Offset": ABSENT})
COMPLETED = Given(length=len(IMAGE), data=IMAGE, offset=len(IMAGE))
UNFINISHED_FINAL = GivenConcat(sent=(len(A), 5))
FINAL_TEXT = "final;{p0} {p1}"
NOT_AN_ID = "/files/not-an-upload"


def core_rows() -> list[Row]:
    return [
        Row("options-creation-url", R_VERSION, "OPTIONS", "{files}", (200, 204),
            expect={"Tus-Version": "1.0.0"}),
        Row("options-creation-url-slash", R_VERSION, "OPTIONS", "{files}/", (200, 204),
            expect={"Tus-Version": "1.0.0"}),
        Row("options-upload-url", R_VERSION, "OPTIONS", "{upload}", (200, 204),
            given=Given(), expect={"Tus-Version": "1.0.0"}),
        Row("options-ignores-tus-resumable", R_OPTIONS_IGNORE, "OPTIONS", "{files}", (200, 204),
            headers={"Tus-Resumable": "0.2.2"}, expect={"Tus-Version": "1.0.0"}),
        Row("options-tus-extension", R_EXTENSION, "OPTIONS", "{files}", (200, 204),
            expect={"Tus-Extension": lists(*EXTENSIONS)}),
        Row("options-tus-max-size", R_MAX_SIZE, "OPTIONS", "{files}", (200, 204),
            expect={"Tus-Max-Size": str(MAX)}),
        Row("post-without-tus-resumable", R_412, "POST", "{files}", 412,
            headers={"Tus-Resumable": None, **length(10)},
            expect={"Tus-Version": "1.0.0", "Location": ABSENT}),
        Row("post-tus-resumable-0.2.2", R_412, "POST", "{files}", 412,
            headers={"Tus-Resumable": "0.2.2", **length(10)},
            expect={"Tus-Version": "1.0.0", "Location": ABSENT}),
        Row("head-without-tus-resumable", R_412, "HEAD", "{upload}", 412, given=Given(),
            headers={"Tus-Resumable": None},
            expect={"Tus-Version": "1.0.0", "Upload-Offset": ABSENT}),
        Row("patch-tus-resumable-2.0.0", R_412_NOOP, "PATCH", "{upload}", 412, given=Given(),
            headers={"Tus-Resumable": "2.0.0", **at(0)}, body=PAYLOAD[:100],
            expect={"Tus-Version": "1.0.0"}, then=offset_is(0)),
        Row("delete-without-tus-resumable", R_412_NOOP, "DELETE", "{upload}", 412,
            given=Given(), headers={"Tus-Resumable": None}, then=offset_is(0)),
        Row("head-new-upload", R_HEAD_OFFSET, "HEAD", "{upload}", 200, given=Given(),
            expect={"Upload-Offset": "0", "Upload-Length": str(LENGTH)}),
        Row("head-partly-sent", R_HEAD_OFFSET, "HEAD", "{upload}", 200,
            given=Given(offset=300),
            expect={"Upload-Offset": "300", "Upload-Length": str(LENGTH)}),
        Row("head-cache-control-no-store", R_NO_STORE, "HEAD", "{upload}", 200, given=Given(),
            expect={"Cache-Control": lists("no-store")}),
        Row("head-unknown-upload", R_HEAD_404, "HEAD", "{unknown}", (404, 410, 403),
            expect={"Upload-Offset": ABSENT}),
        Row("head-not-an-upload-id", R_HEAD_404, "HEAD", NOT_AN_ID, 404,
            expect={"Upload-Offset": ABSENT}),
        Row("patch-first-bytes", R_PATCH_204, "PATCH", "{upload}", 204, given=Given(),
            headers=at(0), body=PAYLOAD[:100], expect={"Upload-Offset": "100"},
            then=offset_is(100)),
        Row("patch-resumes-at-offset", R_PATCH_204, "PATCH", "{upload}", 204,
            given=Given(offset=300), headers=at(300), body=PAYLOAD[300:400],
            expect={"Upload-Offset": "400"}, then=offset_is(400)),
        Row("patch-empty-body", R_PATCH_204, "PATCH", "{upload}", 204, given=Given(offset=300),
            headers=at(300), expect={"Upload-Offset": "300"}, then=offset_is(300)),
        Row("patch-streamed-body", R_PATCH_204, "PATCH", "{upload}", 204,
            given=Given(offset=300), headers=at(300), body=PAYLOAD[300:700], chunked=True,
            expect={"Upload-Offset": "700"}, then=offset_is(700)),
        Row("patch-octet-stream-415", R_PATCH_415, "PATCH", "{upload}", 415, given=Given(),
            headers=at(0, Content_Type="application/octet-stream"), body=PAYLOAD[:100],
            then=offset_is(0)),
        Row("patch-no-content-type-415", R_PATCH_415, "PATCH", "{upload}", 415, given=Given(),
            headers={"Upload-Offset": "0"}, body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-offset-behind-409", R_PATCH_409, "PATCH", "{upload}", 409,
            given=Given(offset=300), headers=at(200), body=PAYLOAD[200:300],
            problem={"offset": 300}, then=offset_is(300)),
        Row("patch-offset-ahead-409", R_PATCH_409, "PATCH", "{upload}", 409,
            given=Given(offset=300), headers=at(400), body=PAYLOAD[400:500],
            problem={"offset": 300}, then=offset_is(300)),
        Row("patch-unknown-upload", R_PATCH_404, "PATCH", "{unknown}", 404, headers=at(0),
            body=PAYLOAD[:100]),
        Row("patch-not-an-upload-id", R_PATCH_404, "PATCH", NOT_AN_ID, 404, headers=at(0),
            body=PAYLOAD[:100]),
        Row("patch-no-upload-offset", R_PATCH_400, "PATCH", "{upload}", 400, given=Given(),
            headers={"Content-Type": OCTETS}, body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-upload-offset-word", R_PATCH_400, "PATCH", "{upload}", 400, given=Given(),
            headers=at("zero"), body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-upload-offset-negative", R_PATCH_400, "PATCH", "{upload}", 400,
            given=Given(), headers=at(-1), body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-past-upload-length-413", R_PATCH_413, "PATCH", "{upload}", 413,
            given=Given(offset=990), headers=at(990), body=PAYLOAD[:20], then=offset_is(990)),
        Row("override-post-as-patch", R_OVERRIDE, "POST", "{upload}", 204, given=Given(),
            headers=at(0, X_HTTP_Method_Override="PATCH"), body=PAYLOAD[:100],
            expect={"Upload-Offset": "100"}, then=offset_is(100)),
        Row("override-post-as-delete", R_OVERRIDE, "POST", "{upload}", 204, given=Given(),
            headers={"X-HTTP-Method-Override": "DELETE"}, then=GONE),
        Row("override-post-as-head", R_OVERRIDE, "POST", "{upload}", 200,
            given=Given(offset=300), headers={"X-HTTP-Method-Override": "HEAD"},
            expect={"Upload-Offset": "300", "Cache-Control": lists("no-store")}),
        Row("override-patch-as-delete", R_OVERRIDE, "PATCH", "{upload}", 204, given=Given(),
            headers=at(0, X_HTTP_Method_Override="DELETE"), then=GONE),
    ]  # fmt: skip


def creation_rows() -> list[Row]:
    return [
        Row("post-creates", R_CREATE, "POST", "{files}", 201, headers=length(LENGTH),
            expect={"Location": UploadUrl("{base}/files/")},
            then=Then(200, {"Upload-Offset": "0", "Upload-Length": str(LENGTH)}, "{location}")),
        Row("post-creates-slash", R_CREATE, "POST", "{files}/", 201, headers=length(LENGTH),
            expect={"Location": UploadUrl("{base}/files/")},
            then=Then(200, {"Upload-Offset": "0"}, "{location}")),
        Row("post-no-length", R_CREATE_400, "POST", "{files}", 400, expect={"Location": ABSENT}),
        Row("post-length-and-defer", R_CREATE_400, "POST", "{files}", 400,
            headers=length(LENGTH, Upload_Defer_Length="1")),
        Row("post-length-word", R_CREATE_400, "POST", "{files}", 400, headers=length("ten")),
        Row("post-length-negative", R_CREATE_400, "POST", "{files}", 400, headers=length(-1)),
        Row("post-length-fraction", R_CREATE_400, "POST", "{files}", 400, headers=length("1.5")),
        Row("post-defer-length-2", R_DEFER_400, "POST", "{files}", 400,
            headers={"Upload-Defer-Length": "2"}),
        Row("post-length-over-max-413", R_CREATE_413, "POST", "{files}", 413,
            headers=length(MAX + 1)),
        Row("post-length-at-max", R_CREATE, "POST", "{files}", 201, headers=length(MAX)),
        Row("head-echoes-metadata", R_METADATA, "HEAD", "{upload}", 200,
            given=Given(metadata="filename d29ybGQucG5n,is_confidential"),
            expect={"Upload-Metadata": "filename d29ybGQucG5n,is_confidential"}),
        Row("post-metadata-key-only", R_METADATA, "POST", "{files}", 201,
            headers=length(LENGTH, Upload_Metadata="is_confidential,filename YS5wbmc="),
            then=Then(200, {"Upload-Metadata": "is_confidential,filename YS5wbmc="},
                      "{location}")),
        Row("head-without-metadata", R_METADATA, "HEAD", "{upload}", 200, given=Given(),
            expect={"Upload-Metadata": ABSENT}),
        Row("post-metadata-bad-base64", R_METADATA_400, "POST", "{files}", 400,
            headers=length(LENGTH, Upload_Metadata="filename not*base64!")),
        Row("post-metadata-empty-key", R_METADATA_400, "POST", "{files}", 400,
            headers=length(LENGTH, Upload_Metadata="filename YS5wbmc=,,type aW1hZ2U=")),
        Row("post-metadata-duplicate-key", R_METADATA_400, "POST", "{files}", 400,
            headers=length(LENGTH, Upload_Metadata="filename YS5wbmc=,filename Yi5wbmc=")),
        Row("post-with-body", R_WITH_UPLOAD, "POST", "{files}", 201,
            headers=length(LENGTH, Content_Type=OCTETS), body=PAYLOAD[:100],
            expect={"Upload-Offset": "100", "Location": UploadUrl("{base}/files/")},
            then=Then(200, {"Upload-Offset": "100"}, "{location}")),
        Row("post-with-empty-body", R_WITH_UPLOAD, "POST", "{files}", 201,
            headers=length(LENGTH, Content_Type=OCTETS), expect={"Upload-Offset": "0"}),
        Row("post-with-body-wrong-type", R_WITH_UPLOAD_415, "POST", "{files}", 415,
            headers=length(LENGTH, Content_Type="text/plain"), body=PAYLOAD[:100],
            expect={"Location": ABSENT}),
        Row("post-with-body-too-long", R_WITH_UPLOAD_413, "POST", "{files}", 413,
            headers=length(10, Content_Type=OCTETS), body=PAYLOAD[:20],
            expect={"Location": ABSENT}),
        Row("post-with-whole-image", R_INGEST, "POST", "{files}", 201,
            headers=length(len(IMAGE), Content_Type=OCTETS), body=IMAGE,
            expect={"Upload-Offset": str(len(IMAGE)), "Pixdrop-Image": PixdropImage(),
                    "Pixdrop-Delete-Token": PRESENT}),
        Row("post-defer-length", R_DEFER, "POST", "{files}", 201,
            headers={"Upload-Defer-Length": "1"},
            then=Then(200, {"Upload-Defer-Length": "1", "Upload-Length": ABSENT,
                            "Upload-Offset": "0"}, "{location}")),
        Row("head-deferred-with-bytes", R_DEFER, "HEAD", "{upload}", 200,
            given=Given(length=None, offset=300),
            expect={"Upload-Defer-Length": "1", "Upload-Length": ABSENT, "Upload-Offset": "300"}),
        Row("patch-declares-length", R_DEFER_SET, "PATCH", "{upload}", 204,
            given=Given(length=None, offset=300), headers=at(300, Upload_Length=str(LENGTH)),
            body=PAYLOAD[300:400], expect={"Upload-Offset": "400"},
            then=offset_is(400, **{"Upload-Length": str(LENGTH), "Upload-Defer-Length": ABSENT})),
        Row("patch-declares-length-no-body", R_DEFER_SET, "PATCH", "{upload}", 204,
            given=Given(length=None, offset=300), headers=at(300, Upload_Length=str(LENGTH)),
            then=offset_is(300, **{"Upload-Length": str(LENGTH)})),
        Row("patch-deferred-without-length", R_DEFER, "PATCH", "{upload}", 204,
            given=Given(length=None, offset=300), headers=at(300), body=PAYLOAD[300:400],
            then=offset_is(400, **{"Upload-Defer-Length": "1", "Upload-Length": ABSENT})),
        Row("patch-length-changed", R_DEFER_FIXED, "PATCH", "{upload}", 400,
            given=Given(length=None, offset=300, declare_length=True),
            headers=at(300, Upload_Length=str(LENGTH + 1)), body=PAYLOAD[300:400],
            then=offset_is(300, **{"Upload-Length": str(LENGTH)})),
        Row("patch-length-repeated", R_DEFER_FIXED, "PATCH", "{upload}", 204,
            given=Given(length=None, offset=300, declare_length=True),
            headers=at(300, Upload_Length=str(LENGTH)), body=PAYLOAD[300:400],
            then=offset_is(400, **{"Upload-Length": str(LENGTH)})),
        Row("patch-length-below-data", R_DEFER_CHECKS, "PATCH", "{upload}", 400,
            given=Given(length=None, offset=300), headers=at(300, Upload_Length="350"),
            body=PAYLOAD[300:400], then=offset_is(300, **{"Upload-Defer-Length": "1"})),
        Row("patch-length-over-max", R_DEFER_CHECKS, "PATCH", "{upload}", 413,
            given=Given(length=None, offset=300), headers=at(300, Upload_Length=str(MAX + 1)),
            body=PAYLOAD[300:400], then=offset_is(300, **{"Upload-Defer-Length": "1"})),
        Row("post-upload-expires", R_EXPIRES_POST, "POST", "{files}", 201,
            headers=length(LENGTH), expect={"Upload-Expires": FutureDate()}),
        Row("patch-upload-expires", R_EXPIRES_PATCH, "PATCH", "{upload}", 204, given=Given(),
            headers=at(0), body=PAYLOAD[:100], expect={"Upload-Expires": FutureDate()}),
        Row("patch-empty-upload-expires", R_EXPIRES_PATCH, "PATCH", "{upload}", 204,
            given=Given(), headers=at(0), expect={"Upload-Expires": FutureDate()}),
        Row("head-upload-expires", R_EXPIRES_HEAD, "HEAD", "{upload}", 200, given=Given(),
            expect={"Upload-Expires": FutureDate()}),
    ]  # fmt: skip


def checksum_rows() -> list[Row]:
    rows = []
    for algo in ALGORITHMS:
        rows += [
            Row(f"patch-checksum-{algo}", R_CHECKSUM_OK, "PATCH", "{upload}", 204,
                given=Given(), headers=at(0, Upload_Checksum=checksum(algo, PAYLOAD[:100])),
                body=PAYLOAD[:100], expect={"Upload-Offset": "100"}, then=offset_is(100)),
            Row(f"patch-checksum-{algo}-mismatch", R_CHECKSUM_460, "PATCH", "{upload}", 460,
                given=Given(offset=300),
                headers=at(300, Upload_Checksum=checksum(algo, OTHER[300:400])),
                body=PAYLOAD[300:400], then=offset_is(300)),
        ]  # fmt: skip
    sha1 = checksum("sha1", PAYLOAD[:100])
    rows += [
        Row("options-checksum-algorithms", R_ALGORITHMS, "OPTIONS", "{files}", (200, 204),
            expect={"Tus-Checksum-Algorithm": lists(*ALGORITHMS)}),
        Row("options-checksum-names-lower-case", R_ALGORITHMS, "OPTIONS", "{files}", (200, 204),
            expect={"Tus-Checksum-Algorithm": Matches(r"[a-z0-9-]+(,\s*[a-z0-9-]+)*")}),
        Row("patch-checksum-unknown-algorithm", R_CHECKSUM_400, "PATCH", "{upload}", 400,
            given=Given(), headers=at(0, Upload_Checksum="whirlpool " + sha1.split()[1]),
            body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-checksum-upper-case", R_CHECKSUM_400, "PATCH", "{upload}", 400,
            given=Given(), headers=at(0, Upload_Checksum="SHA1 " + sha1.split()[1]),
            body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-checksum-no-value", R_CHECKSUM_MALFORMED, "PATCH", "{upload}", 400,
            given=Given(), headers=at(0, Upload_Checksum="sha1"), body=PAYLOAD[:100],
            then=offset_is(0)),
        Row("patch-checksum-not-base64", R_CHECKSUM_MALFORMED, "PATCH", "{upload}", 400,
            given=Given(), headers=at(0, Upload_Checksum="sha1 not*base64!"),
            body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-checksum-wrong-size", R_CHECKSUM_MALFORMED, "PATCH", "{upload}", (400, 460),
            given=Given(), headers=at(0, Upload_Checksum=checksum("md5", PAYLOAD[:100])
                                      .replace("md5", "sha1")),
            body=PAYLOAD[:100], then=offset_is(0)),
        Row("patch-trailer-sha1", R_TRAILER, "PATCH", "{upload}", 204, given=Given(),
            headers=at(0), body=PAYLOAD[:100], chunked=True, trailers={"Upload-Checksum": sha1},
            expect={"Upload-Offset": "100"}, then=offset_is(100)),
        Row("patch-trailer-sha256", R_TRAILER, "PATCH", "{upload}", 204,
            given=Given(offset=300), headers=at(300), body=PAYLOAD[300:400], chunked=True,
            trailers={"Upload-Checksum": checksum("sha256", PAYLOAD[300:400])},
            expect={"Upload-Offset": "400"}, then=offset_is(400)),
        Row("patch-trailer-mismatch", R_TRAILER, "PATCH", "{upload}", 460,
            given=Given(offset=300), headers=at(300), body=PAYLOAD[300:400], chunked=True,
            trailers={"Upload-Checksum": checksum("sha1", OTHER[300:400])},
            then=offset_is(300)),
        Row("patch-trailer-crc32-mismatch", R_TRAILER, "PATCH", "{upload}", 460,
            given=Given(), headers=at(0), body=PAYLOAD[:100], chunked=True,
            trailers={"Upload-Checksum": checksum("crc32", OTHER[:100])}, then=offset_is(0)),
    ]  # fmt: skip
    return rows


def termination_rows() -> list[Row]:
    return [
        Row("delete-new-upload", R_DELETE, "DELETE", "{upload}", 204, given=Given(),
            then=GONE),
        Row("delete-partly-sent", R_DELETE, "DELETE", "{upload}", 204,
            given=Given(offset=300), then=GONE),
        Row("delete-completed-upload", R_DELETE, "DELETE", "{upload}", 204, given=COMPLETED,
            then=GONE),
        Row("delete-partial-upload", R_DELETE, "DELETE", "{upload}", 204,
            given=Given(partial=True, offset=300), then=GONE),
        Row("delete-partial-awaited-by-final", R_FINAL, "DELETE", "{p1}", 409,
            given=GivenConcat(sent=(len(A), 10)),
            then=Then(200, {"Upload-Offset": "10"}, "{p1}")),
        Row("head-after-delete", R_DELETE_AFTER, "HEAD", "{upload}", (404, 410),
            given=Given(offset=300, terminated=True), expect={"Upload-Offset": ABSENT}),
        Row("patch-after-delete", R_DELETE_AFTER, "PATCH", "{upload}", (404, 410),
            given=Given(offset=300, terminated=True), headers=at(300), body=PAYLOAD[300:400]),
        Row("delete-after-delete", R_DELETE_AFTER, "DELETE", "{upload}", (404, 410),
            given=Given(terminated=True)),
        Row("delete-unknown-upload", R_DELETE_AFTER, "DELETE", "{unknown}", (404, 410)),
    ]  # fmt: skip


def concatenation_rows() -> list[Row]:
    whole = str(len(IMAGE))
    return [
        Row("post-partial", R_PARTIAL, "POST", "{files}", 201,
            headers=length(LENGTH, Upload_Concat="partial"),
            expect={"Location": UploadUrl("{base}/files/")},
            then=Then(200, {"Upload-Concat": "partial", "Upload-Offset": "0"}, "{location}")),
        Row("head-partial", R_PARTIAL_HEAD, "HEAD", "{upload}", 200,
            given=Given(partial=True, offset=300),
            expect={"Upload-Concat": "partial", "Upload-Offset": "300",
                    "Upload-Length": str(LENGTH)}),
        Row("patch-completes-partial", R_PARTIAL_RAW, "PATCH", "{upload}", 204,
            given=Given(partial=True, offset=900), headers=at(900), body=PAYLOAD[900:],
            expect={"Upload-Offset": str(LENGTH), "Pixdrop-Image": ABSENT},
            then=offset_is(LENGTH)),
        Row("post-final", R_FINAL, "POST", "{files}", 201, given=GivenConcat(final=False),
            headers={"Upload-Concat": FINAL_TEXT},
            expect={"Location": UploadUrl("{base}/files/"), "Pixdrop-Image": PixdropImage()},
            then=Then(200, {"Upload-Concat": FINAL_TEXT, "Upload-Offset": whole,
                            "Upload-Length": whole}, "{location}")),
        Row("post-final-absolute-urls", R_FINAL, "POST", "{files}", 201,
            given=GivenConcat(final=False),
            headers={"Upload-Concat": "final;{base}{p0} {base}{p1}"},
            expect={"Pixdrop-Image": PixdropImage()},
            then=Then(200, {"Upload-Offset": whole, "Upload-Length": whole}, "{location}")),
        Row("post-final-of-three", R_FINAL, "POST", "{files}", 201,
            given=GivenConcat(parts=(IMAGE[:40], IMAGE[40:80], IMAGE[80:]), final=False),
            headers={"Upload-Concat": "final;{p0} {p1} {p2}"},
            expect={"Pixdrop-Image": PixdropImage()}),
        Row("post-final-with-empty-partial", R_FINAL, "POST", "{files}", 201,
            given=GivenConcat(parts=(A, b"", B), final=False),
            headers={"Upload-Concat": "final;{p0} {p1} {p2}"},
            expect={"Pixdrop-Image": PixdropImage()},
            then=Then(200, {"Upload-Offset": whole, "Upload-Length": whole}, "{location}")),
        Row("post-final-wrong-order", R_FINAL, "POST", "{files}", 422,
            given=GivenConcat(final=False), headers={"Upload-Concat": "final;{p1} {p0}"}),
        Row("head-final", R_FINAL_HEAD, "HEAD", "{final}", 200, given=GivenConcat(),
            expect={"Upload-Concat": FINAL_TEXT, "Upload-Offset": whole, "Upload-Length": whole,
                    "Pixdrop-Image": PixdropImage()}),
        Row("final-without-partial-metadata", R_FINAL_METADATA, "HEAD", "{final}", 200,
            given=GivenConcat(metadata="filename YS5wbmc="),
            expect={"Upload-Metadata": ABSENT, "Upload-Concat": FINAL_TEXT}),
        Row("final-with-own-metadata", R_FINAL_METADATA, "POST", "{files}", 201,
            given=GivenConcat(final=False, metadata="filename YS5wbmc="),
            headers={"Upload-Concat": FINAL_TEXT, "Upload-Metadata": "filename Yi5wbmc="},
            then=Then(200, {"Upload-Metadata": "filename Yi5wbmc="}, "{location}")),
        Row("patch-final-403", R_FINAL_403, "PATCH", "{final}", 403, given=UNFINISHED_FINAL,
            headers=at(0), body=A,
            then=Then(200, {"Upload-Offset": "5"}, "{p1}")),
        Row("patch-final-403-final-unchanged", R_FINAL_403, "PATCH", "{final}", 403,
            given=UNFINISHED_FINAL, headers=at(0), body=A,
            then=Then(200, {"Upload-Offset": ABSENT, "Upload-Length": whole}, "{final}")),
        Row("post-final-with-upload-length", R_FINAL_400, "POST", "{files}", 400,
            given=GivenConcat(final=False),
            headers={"Upload-Concat": FINAL_TEXT, "Upload-Length": whole}),
        Row("post-final-unknown-partial", R_FINAL_400, "POST", "{files}", 400,
            given=GivenConcat(final=False), headers={"Upload-Concat": "final;{p0} {unknown}"},
            mentions="{unknown_id}"),
        Row("post-final-of-plain-upload", R_FINAL_400, "POST", "{files}", 400,
            given=Given(offset=LENGTH // 2), headers={"Upload-Concat": "final;{upload}"}),
        Row("post-final-of-final", R_FINAL_400, "POST", "{files}", 400, given=GivenConcat(),
            headers={"Upload-Concat": "final;{final}"}),
        Row("post-final-of-unfinished", R_UNFINISHED, "POST", "{files}", 201,
            given=GivenConcat(sent=(len(A), 5), final=False),
            headers={"Upload-Concat": FINAL_TEXT},
            expect={"Location": UploadUrl("{base}/files/"), "Pixdrop-Image": ABSENT},
            then=Then(200, {"Upload-Concat": FINAL_TEXT, "Upload-Length": whole}, "{location}")),
        Row("head-unfinished-final", R_UNFINISHED_HEAD, "HEAD", "{final}", 200,
            given=UNFINISHED_FINAL,
            expect={"Upload-Offset": ABSENT, "Upload-Length": whole,
                    "Upload-Concat": FINAL_TEXT}),
        Row("last-partial-byte-completes-final", R_UNFINISHED, "PATCH", "{p1}", 204,
            given=GivenConcat(sent=(len(A), len(B) - 10)), headers=at(len(B) - 10),
            body=B[-10:],
            expect={"Upload-Offset": str(len(B)), "Pixdrop-Image": PixdropImage(),
                    "Pixdrop-Delete-Token": PRESENT},
            then=Then(200, {"Upload-Offset": whole, "Upload-Length": whole,
                            "Pixdrop-Image": PixdropImage()}, "{final}")),
    ]  # fmt: skip


def proxy_and_cors_rows() -> list[Row]:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "img.example.com"}
    rfc7239 = {"Forwarded": "for=192.0.2.7;proto=https;host=img.example.com"}
    created = Then(200, {"Upload-Offset": "0"}, "{location}")
    return [
        Row("location-from-host-header", R_LOCATION, "POST", "{files}", 201,
            headers=length(LENGTH, Host="pixdrop.test:8080"),
            expect={"Location": UploadUrl("http://pixdrop.test:8080/files/")}),
        Row("location-public-url", R_PUBLIC_URL, "POST", "{files}", 201,
            settings={"public_url": "https://cdn.example.com/"}, headers=length(LENGTH),
            expect={"Location": UploadUrl("https://cdn.example.com/files/")}, then=created),
        Row("x-forwarded-ignored-by-default", R_FORWARDED_OFF, "POST", "{files}", 201,
            headers={**length(LENGTH), **forwarded},
            expect={"Location": UploadUrl("{base}/files/")}),
        Row("forwarded-ignored-by-default", R_FORWARDED_OFF, "POST", "{files}", 201,
            headers={**length(LENGTH), **rfc7239},
            expect={"Location": UploadUrl("{base}/files/")}),
        Row("x-forwarded-trusted", R_FORWARDED_ON, "POST", "{files}", 201, settings=TRUSTED,
            headers={**length(LENGTH), **forwarded},
            expect={"Location": UploadUrl("https://img.example.com/files/")}, then=created),
        Row("forwarded-trusted", R_FORWARDED_ON, "POST", "{files}", 201, settings=TRUSTED,
            headers={**length(LENGTH), **rfc7239},
            expect={"Location": UploadUrl("https://img.example.com/files/")}, then=created),
        Row("forwarded-trusted-quoted-port", R_FORWARDED_ON, "POST", "{files}", 201,
            settings=TRUSTED,
            headers=length(LENGTH, Forwarded='for="[2001:db8::7]";proto=https;'
                                             'host="img.example.com:8443"'),
            expect={"Location": UploadUrl("https://img.example.com:8443/files/")}),
        Row("trusted-without-forwarded", R_FORWARDED_ON, "POST", "{files}", 201,
            settings=TRUSTED, headers=length(LENGTH),
            expect={"Location": UploadUrl("{base}/files/")}),
        Row("pixdrop-image-behind-proxy", R_FORWARDED_ON, "POST", "{files}", 201,
            settings=TRUSTED, headers={**length(len(IMAGE), Content_Type=OCTETS), **forwarded},
            body=IMAGE, expect={"Pixdrop-Image": PixdropImage("https://img.example.com")}),
        Row("tus-path-setting", R_TUS_PATH, "POST", "/uploads/tus", 201,
            settings={"tus_path": "/uploads/tus"}, headers=length(LENGTH),
            expect={"Location": UploadUrl("{base}/uploads/tus/")}, then=created),
        Row("tus-path-setting-options", R_TUS_PATH, "OPTIONS", "/uploads/tus/", (200, 204),
            settings={"tus_path": "/uploads/tus"}, expect={"Tus-Version": "1.0.0"}),
        Row("cors-preflight-creation", R_PREFLIGHT, "OPTIONS", "{files}", (200, 204),
            settings=CORS,
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": ",".join(ALLOW_HEADERS).lower()},
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Allow-Methods":
                        lists("POST", "GET", "HEAD", "PATCH", "DELETE", "OPTIONS"),
                    "Access-Control-Allow-Headers": lists(*ALLOW_HEADERS),
                    "Access-Control-Max-Age": Integer()}),
        Row("cors-preflight-patch", R_PREFLIGHT, "OPTIONS", "{upload}", (200, 204),
            settings=CORS, given=Given(),
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH",
                     "Access-Control-Request-Headers":
                         "tus-resumable,upload-offset,content-type,upload-checksum"},
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Allow-Methods": lists("PATCH"),
                    "Access-Control-Allow-Headers":
                        lists("Tus-Resumable", "Upload-Offset", "Content-Type",
                              "Upload-Checksum")}),
        Row("cors-options-discovery", R_PREFLIGHT, "OPTIONS", "{files}", (200, 204),
            settings=CORS, headers={"Origin": ORIGIN},
            expect={"Tus-Version": "1.0.0", "Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Expose-Headers": lists("Tus-Version", "Tus-Extension")}),
        Row("cors-post-exposes", R_EXPOSE, "POST", "{files}", 201, settings=CORS,
            headers=length(LENGTH, Origin=ORIGIN),
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Expose-Headers": lists(*EXPOSE_HEADERS)}),
        Row("cors-head-exposes", R_EXPOSE, "HEAD", "{upload}", 200, settings=CORS,
            given=Given(), headers={"Origin": ORIGIN},
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Expose-Headers": lists(*EXPOSE_HEADERS)}),
        Row("cors-patch-exposes", R_EXPOSE, "PATCH", "{upload}", 204, settings=CORS,
            given=Given(), headers=at(0, Origin=ORIGIN), body=PAYLOAD[:100],
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Expose-Headers": lists("Upload-Offset", "Upload-Expires")}),
        Row("cors-error-exposes", R_EXPOSE, "PATCH", "{upload}", 409, settings=CORS,
            given=Given(offset=300), headers=at(0, Origin=ORIGIN), body=PAYLOAD[:100],
            expect={"Access-Control-Allow-Origin": ORIGIN,
                    "Access-Control-Expose-Headers": lists("Upload-Offset")}),
        Row("cors-other-origin", R_CORS_OFF, "POST", "{files}", 201, settings=CORS,
            headers=length(LENGTH, Origin="https://other.example"),
            expect={"Access-Control-Allow-Origin": ABSENT}),
        Row("cors-off-by-default", R_CORS_OFF, "POST", "{files}", 201,
            headers=length(LENGTH, Origin=ORIGIN),
            expect={"Access-Control-Allow-Origin": ABSENT,
                    "Access-Control-Expose-Headers": ABSENT}),
        Row("cors-off-preflight", R_CORS_OFF, "OPTIONS", "{files}", (200, 204),
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH"},
            expect={"Access-Control-Allow-Origin": ABSENT}),
    ]  # fmt: skip


def pixdrop_rows() -> list[Row]:
    whole = str(len(IMAGE))
    last = len(IMAGE) - 100
    return [
        Row("patch-last-byte-stores-image", R_INGEST, "PATCH", "{upload}", 204,
            given=Given(length=len(IMAGE), data=IMAGE, offset=last), headers=at(last),
            body=IMAGE[last:],
            expect={"Upload-Offset": whole, "Pixdrop-Image": PixdropImage(),
                    "Pixdrop-Delete-Token": PRESENT},
            then=offset_is(len(IMAGE), **{"Upload-Length": whole})),
        Row("head-completed-upload", R_COMPLETED, "HEAD", "{upload}", 200, given=COMPLETED,
            expect={"Upload-Offset": whole, "Upload-Length": whole,
                    "Pixdrop-Image": PixdropImage(), "Pixdrop-Delete-Token": ABSENT,
                    "Upload-Expires": ABSENT}),
        Row("patch-last-byte-not-an-image", R_REFUSED, "PATCH", "{upload}", 422,
            given=Given(offset=900), headers=at(900), body=PAYLOAD[900:], then=GONE),
        Row("patch-completed-with-bytes", R_AFTER_END, "PATCH", "{upload}", (409, 413),
            given=COMPLETED, headers=at(len(IMAGE)), body=PAYLOAD[:10],
            then=offset_is(len(IMAGE))),
        Row("patch-completed-empty", R_AFTER_END, "PATCH", "{upload}", 204, given=COMPLETED,
            headers=at(len(IMAGE)), expect={"Upload-Offset": whole}),
        Row("post-final-not-an-image", R_REFUSED, "POST", "{files}", 422,
            given=GivenConcat(parts=(PAYLOAD[:500], PAYLOAD[500:]), final=False),
            headers={"Upload-Concat": FINAL_TEXT}, expect={"Location": ABSENT}),
        Row("last-partial-byte-of-non-image", R_REFUSED, "PATCH", "{p1}", 422,
            given=GivenConcat(parts=(PAYLOAD[:500], PAYLOAD[500:]), sent=(500, 490)),
            headers=at(490), body=PAYLOAD[990:], then=Then(404, path="{final}")),
        Row("partials-freed-after-final", R_PARTIALS_FREED, "HEAD", "{p0}", 404,
            given=GivenConcat(), expect={"Upload-Offset": ABSENT}),
        Row("partials-freed-after-refused-final", R_PARTIALS_FREED, "POST", "{files}", 422,
            given=GivenConcat(parts=(PAYLOAD[:500], PAYLOAD[500:]), final=False),
            headers={"Upload-Concat": FINAL_TEXT}, then=Then(404, path="{p1}")),
        Row("partials-freed-after-last-byte", R_PARTIALS_FREED, "PATCH", "{p1}", 204,
            given=GivenConcat(sent=(len(A), len(B) - 10)), headers=at(len(B) - 10),
            body=B[-10:], then=Then(404, path="{p0}")),
        Row("problem-on-404", R_PROBLEM, "PATCH", "{unknown}", 404, headers=at(0)),
        Row("problem-on-412", R_PROBLEM, "POST", "{files}", 412,
            headers={"Tus-Resumable": "0.1.0", **length(LENGTH)}),
        Row("problem-on-460", R_PROBLEM, "PATCH", "{upload}", 460, given=Given(),
            headers=at(0, Upload_Checksum=checksum("sha256", b"x")), body=b"y"),
    ]  # fmt: skip


ROWS = (
    core_rows()
    + creation_rows()
    + checksum_rows()
    + termination_rows()
    + concatenation_rows()
    + proxy_and_cors_rows()
    + pixdrop_rows()
)


# --- running a row ---------------------------------------------------------------------------


def arrange(client: httpx.Client, given: Given | GivenConcat | None) -> dict[str, str]:
    """Make the row's starting state through the API; return the paths it made."""
    if given is None:
        return {}
    if isinstance(given, GivenConcat):
        made: dict[str, str] = {}
        sent = given.sent or tuple(len(p) for p in given.parts)
        for index, (part, count) in enumerate(zip(given.parts, sent, strict=True)):
            headers = {"Upload-Concat": "partial"}
            if given.metadata is not None:
                headers["Upload-Metadata"] = given.metadata
            path = location_path(create(client, len(part), headers=headers))
            if count:
                response = patch(client, path, 0, part[:count])
                assert response.status_code == 204, response.text
            made[f"p{index}"] = path
        if given.final:
            paths = " ".join(made[f"p{i}"] for i in range(len(given.parts)))
            response = create_final(client, paths)
            made["final"] = location_path(response)
        made["upload"] = made.get("final", made["p0"])
        return made
    headers = {}
    if given.metadata is not None:
        headers["Upload-Metadata"] = given.metadata
    if given.partial:
        headers["Upload-Concat"] = "partial"
    path = location_path(create(client, given.length, headers=headers))
    extra = {"Upload-Length": str(len(given.data))} if given.declare_length else {}
    if given.offset or extra:
        response = patch(client, path, 0, given.data[: given.offset], extra)
        assert response.status_code == 204, response.text
    if given.terminated:
        response = client.delete(path, headers=TUS)
        assert response.status_code == 204, response.text
    return {"upload": path}


def create_final(client: httpx.Client, paths: str) -> httpx.Response:
    return client.post("/files", headers={**TUS, "Upload-Concat": f"final;{paths}"})


def send(client: httpx.Client, base_url: str, row: Row, ctx: Mapping[str, str]) -> Reply:
    headers = {} if row.method == "OPTIONS" else dict(TUS)
    for name, value in row.headers.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value.format_map(ctx)
    path = row.path.format_map(ctx)
    if row.chunked:
        chunks = [row.body[: len(row.body) // 2], row.body[len(row.body) // 2 :]]
        return send_chunked(base_url, row.method, path, headers, chunks, row.trailers)
    return Reply.of(client.request(row.method, path, headers=headers, content=row.body))


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_row(tus_servers: TusServers, row: Row) -> None:
    server = tus_servers(**{**TABLE_SETTINGS, **row.settings})
    client = server.client
    ctx = {
        "base": server.url,
        "files": "/files",
        "unknown": f"/files/{UNKNOWN_ID}",
        "unknown_id": UNKNOWN_ID,
        **arrange(client, row.given),
    }
    reply = send(client, server.url, row, ctx)
    wanted = row.status if isinstance(row.status, tuple) else (row.status,)
    errors = [] if reply.status in wanted else [f"status {reply.status}, want {wanted}"]
    expect = dict(row.expect)
    if row.method != "OPTIONS":
        expect.setdefault("Tus-Resumable", "1.0.0")
    errors += check_headers(reply, expect, ctx)
    if reply.status >= 400 and reply.status in wanted:
        errors += problem_errors(reply, effective_method(row))
        if effective_method(row) != "HEAD" and not errors:
            errors += problem_field_errors(reply.json(), row, ctx)
    assert not errors, f"{row.method} {row.path}: {errors}\n{reply}"
    if row.then is not None:
        if "location" in reply.headers:
            ctx["location"] = httpx.URL(reply.headers["location"]).path
        after = Reply.of(client.head(row.then.path.format_map(ctx), headers=TUS))
        errors = [] if after.status == row.then.status else [f"status {after.status}"]
        errors += check_headers(after, row.then.expect, ctx)
        assert not errors, f"then HEAD {row.then.path}: {errors}\n{after}"


def effective_method(row: Row) -> str:
    return row.headers.get("X-HTTP-Method-Override") or row.method


def problem_field_errors(body: dict[str, Any], row: Row, ctx: Mapping[str, str]) -> list[str]:
    errors = [f"problem {k}={body.get(k)!r}, want {v!r}" for k, v in row.problem.items()
              if body.get(k) != v]  # fmt: skip
    if row.mentions and row.mentions.format_map(ctx) not in body["detail"]:
        errors.append(f"problem detail does not name {row.mentions.format_map(ctx)}")
    return errors
