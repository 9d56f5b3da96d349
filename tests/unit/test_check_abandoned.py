"""An append its client left idle is answered, whichever idle deadline fired first.

The body's own deadline (``metering.Body``) and the connection guard's are equal. When the
body's fires first, the guard ends the body a moment later, and the next ``receive`` raises
``BodyEnded`` (as ``RequestGuard.receive`` does): ``check_abandoned`` asks that receive whether
the client is gone. It must not take the ending for a disconnect: the creation would be
answered 408 with its bytes kept (seen in ``tests/tus/test_behaviour.py::
test_silent_creation_with_upload_keeps_what_arrived``, about once in ten runs).
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.requests import Request

from pixdrop.errors import BodyEnded, ClientGone
from pixdrop.http.ietf import check_abandoned
from pixdrop.services.appends import AppendResult


def request_whose_receive(outcome: BaseException | dict[str, Any]) -> Request:
    async def receive() -> dict[str, Any]:
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


def interrupted() -> AppendResult:
    return AppendResult(progress=None, stored=None, interrupted=True)  # type: ignore[arg-type]


def test_a_body_ended_for_idleness_is_no_disconnect() -> None:
    anyio.run(check_abandoned, request_whose_receive(BodyEnded()), interrupted())


def test_a_disconnected_client_is_gone() -> None:
    with pytest.raises(ClientGone):
        anyio.run(
            check_abandoned, request_whose_receive({"type": "http.disconnect"}), interrupted()
        )
