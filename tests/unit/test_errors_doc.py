"""docs/errors.md lists every problem type a client can receive, with its status and title.

The types are enumerated from the code, not from a list kept here: every subclass of
``PixdropError`` (the base included), what the HTTP layer renders by itself (``about:blank``
405 and 500, the router's 404 and 400, validation errors), and what the IETF draft's error
translation produces. A new type in the code that the page does not list fails, by name.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

import pixdrop
from pixdrop.errors import (
    IANA_PROBLEM_TYPES,
    PROBLEM_BASE,
    ChecksumMismatch,
    InvalidResumableRequest,
    OffsetMismatch,
    PayloadTooLarge,
    PixdropError,
    UploadExpired,
    UploadNotReceiving,
)
from pixdrop.http import errors as http_errors
from pixdrop.protocols import ietf_responses

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "errors.md"
SRC = ROOT / "src" / "pixdrop"

#: A row of the index table: | `type` | status | title |
_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*(\d{3})\s*\|\s*([^|]*?)\s*\|\s*$")
#: A section heading: ### `type` (status)
_HEADING = re.compile(r"^#{2,4}\s+`([^`]+)`\s+\((\d{3})\)\s*$")

Produced = tuple[str, int, str, str]  # type, status, title, where it comes from


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _index() -> dict[tuple[str, int], str]:
    """(type, status) -> title, from the index table."""
    rows = {}
    for line in _doc().splitlines():
        match = _ROW.match(line)
        if match:
            rows[(match.group(1), int(match.group(2)))] = match.group(3)
    return rows


def _headings() -> set[tuple[str, int]]:
    return {
        (m.group(1), int(m.group(2)))
        for m in map(_HEADING.match, _doc().splitlines())
        if m is not None
    }


def _undocumented(produced: list[Produced]) -> list[str]:
    """What the page lacks for each produced type: an index row, the right title, a section."""
    index, headings = _index(), _headings()
    gaps = []
    for type_, status, title, origin in produced:
        key = (type_, status)
        if key not in index:
            gaps.append(f"{origin}: no index row for `{type_}` | {status}")
        elif index[key] != title:
            gaps.append(
                f"{origin}: index title of `{type_}` is {index[key]!r}, code says {title!r}"
            )
        if key not in headings:
            gaps.append(f"{origin}: no section headed `{type_}` ({status})")
    return gaps


def _import_all() -> None:
    """Import every pixdrop module, so that error classes defined anywhere are subclasses."""
    for module in pkgutil.walk_packages(pixdrop.__path__, "pixdrop."):
        if module.name.rsplit(".", 1)[-1] != "__main__":  # __main__ runs the CLI
            importlib.import_module(module.name)


def _subclasses(cls: type[PixdropError]) -> Iterator[type[PixdropError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _error_classes() -> list[type[PixdropError]]:
    _import_all()
    found: set[type[PixdropError]] = {PixdropError, *_subclasses(PixdropError)}
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


def _type_of(cls: type[PixdropError]) -> str:
    """The ``type`` an instance answers with (its ``__init__`` is not needed for that)."""
    return cls.__new__(cls).type


def _from_error(error: PixdropError, origin: str) -> Produced:
    return (error.type, error.status, error.title, origin)


def _body(response: Response) -> dict[str, Any]:
    body = json.loads(bytes(response.body))
    assert isinstance(body, dict)
    return body


def _from_body(body: dict[str, Any], origin: str) -> Produced:
    return (body["type"], body["status"], body["title"], origin)


def _request(method: str = "PUT", path: str = "/v1/images") -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    return Request(scope)


def _http_layer() -> list[tuple[Produced, Response]]:
    """What ``http/errors.py`` answers by itself, with each response."""
    answers: list[tuple[Produced, Response]] = []
    response = http_errors.internal_error("0123456789abcdef")
    answers.append((_from_body(_body(response), "http.errors.internal_error"), response))
    for status in (400, 404, 405):
        exc = StarletteHTTPException(status, headers={"Allow": "POST"} if status == 405 else None)
        response = asyncio.run(http_errors._http_error(_request(), exc))
        answers.append((_from_body(_body(response), f"router {status}"), response))
    invalid = RequestValidationError([{"loc": ("query", "q"), "msg": "bad", "type": "x"}])
    response = asyncio.run(http_errors._validation_error(_request(), invalid))
    answers.append((_from_body(_body(response), "request validation"), response))
    return answers


def _ietf_translations() -> list[Produced]:
    """Every type the IETF draft's error translation can answer with."""
    made: list[tuple[PixdropError, str]] = []
    for version in (3, 6, 7, 8):
        made.append((ietf_responses.mismatch_error(5, 3, version), "mismatch_error"))
        for appending in (False, True):
            error = ietf_responses.completed_error(version, length=5, appending_bytes=appending)
            made.append((error, "completed_error"))
        raised = [
            OffsetMismatch("x", offset=5, provided_offset=3),
            UploadNotReceiving("x", offset=5),
            UploadExpired("x"),
            ChecksumMismatch("x", algorithm="sha256"),
            PayloadTooLarge("x", limit="upload_length", allowed=1),
            InvalidResumableRequest("x"),
        ]
        for error in raised:
            out = ietf_responses.translate_error(error, version, length_errors=True)
            made.append((out, f"translate_error({type(error).__name__}, {version})"))
    return [_from_error(error, origin) for error, origin in made]


def _constant_keyword_values(name: str) -> set[str]:
    """String constants passed as ``name=...`` or under the key ``"name"`` anywhere in src/."""
    values = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == name and isinstance(keyword.value, ast.Constant):
                        values.add(keyword.value.value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == name
                        and isinstance(value, ast.Constant)
                    ):
                        values.add(value.value)
    return {v for v in values if isinstance(v, str)}


# --- the tests ------------------------------------------------------------------------------


def test_the_page_parses() -> None:
    index, headings = _index(), _headings()
    assert len(index) >= 30
    assert set(headings) <= set(index), sorted(set(headings) - set(index))


def test_every_error_class_is_documented() -> None:
    classes = _error_classes()
    assert PixdropError in classes
    assert len(classes) >= 30  # the walk found the tree, not just its root
    produced = [(_type_of(c), c.status, c.title, c.__name__) for c in classes]
    gaps = _undocumented(produced)
    assert not gaps, "docs/errors.md does not document:\n" + "\n".join(gaps)


def test_every_index_row_is_a_type_the_code_produces() -> None:
    produced = {(_type_of(c), c.status) for c in _error_classes()}
    produced |= {(p[0], p[1]) for p, _ in _http_layer()}
    stale = sorted(set(_index()) - produced)
    assert not stale, f"docs/errors.md lists types the code does not have: {stale}"


def test_the_http_layers_own_answers_are_documented() -> None:
    answers = _http_layer()
    produced = [p for p, _ in answers]
    assert ("about:blank", 500) in {(p[0], p[1]) for p in produced}
    assert ("about:blank", 405) in {(p[0], p[1]) for p in produced}
    gaps = _undocumented(produced)
    assert not gaps, "docs/errors.md does not document:\n" + "\n".join(gaps)
    # What the page says about them.
    internal = _body(answers[0][1])
    assert internal["request_id"] == "0123456789abcdef"
    not_allowed = next(r for p, r in answers if p[1] == 405)
    assert not_allowed.headers["allow"] == "POST"
    assert "instance" not in _body(not_allowed)
    validation = next(r for p, r in answers if p[3] == "request validation")
    assert validation.status_code == 400
    assert _body(validation)["errors"] == [{"field": "q", "message": "bad"}]


def test_the_iana_types_and_the_ietf_translations_are_documented() -> None:
    iana = {t for t in map(_type_of, _error_classes()) if t.startswith(IANA_PROBLEM_TYPES)}
    assert len(iana) >= 3
    doc = _doc()
    assert f"`{IANA_PROBLEM_TYPES}`" in doc
    for type_ in iana:
        assert f"`#{type_.removeprefix(IANA_PROBLEM_TYPES)}`" in doc, type_
    gaps = _undocumented(_ietf_translations())
    assert not gaps, "docs/errors.md does not document:\n" + "\n".join(gaps)


def test_problem_types_are_relative_under_problems() -> None:
    assert PROBLEM_BASE == "/problems/"
    assert f"`{PROBLEM_BASE}`" in _doc()
    for cls in _error_classes():
        type_ = _type_of(cls)
        assert type_.startswith((PROBLEM_BASE, IANA_PROBLEM_TYPES)), (cls.__name__, type_)


@pytest.mark.parametrize(
    ("member", "at_least"),
    [("reason", 14), ("limit", 6)],
)
def test_every_member_value_in_the_code_is_documented(member: str, at_least: int) -> None:
    """Every ``reason`` of an unprocessable image and every named ``limit``."""
    values = _constant_keyword_values(member)
    assert len(values) >= at_least, values  # the scan still finds them
    doc = _doc()
    missing = sorted(v for v in values if f"`{v}`" not in doc and f'`{member}: "{v}"`' not in doc)
    assert not missing, f"docs/errors.md does not mention these `{member}` values: {missing}"
