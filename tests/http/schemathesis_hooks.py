"""schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

An IETF draft creation (``POST /files/`` with ``Upload-Draft-Interop-Version``) is answered
with a ``104 (Upload Resumption Supported)`` interim response first, as the draft wants.
RFC 9110 §15.2 requires every HTTP/1.1 client to read 1xx responses it does not expect, but
schemathesis' client (requests on ``http.client``) skips only ``100``: it takes the 104 for
the final answer and reads the real one as the reply to its next request. So the creations
schemathesis sends go as tus creations; the draft's are covered by ``tests/ietf/``.

The keyed run sends one admin key on every request; ``GET /v1/keys`` lists it, and its id
feeds ``DELETE /v1/keys/{key_id}``: that key (``PIXDROP_ST_KEPT_KEY``, its id) is never
revoked, or every later request would be a 401 about the run's own key.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

INTEROP = "upload-draft-interop-version"
KEPT_KEY = os.environ.get("PIXDROP_ST_KEPT_KEY")
#: A key id no key has: its revocation is a 404.
NO_KEY = "A" * 22


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    method, path = case.operation.method.upper(), case.operation.path
    if method == "DELETE" and path == "/v1/keys/{key_id}" and KEPT_KEY:
        if (case.path_parameters or {}).get("key_id") == KEPT_KEY:
            case.path_parameters["key_id"] = NO_KEY
        return
    if case.operation.method.upper() != "POST" or not case.operation.path.startswith("/files"):
        return
    for headers in (case.headers, kwargs.get("headers")):
        if headers:
            for name in [n for n in headers if n.lower() == INTEROP]:
                del headers[name]
