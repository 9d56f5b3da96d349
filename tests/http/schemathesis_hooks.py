"""schemathesis hooks for ``test_schemathesis.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

An IETF draft creation (``POST /files/`` with ``Upload-Draft-Interop-Version``) is answered
with a ``104 (Upload Resumption Supported)`` interim response first, as the draft wants.
RFC 9110 §15.2 requires every HTTP/1.1 client to read 1xx responses it does not expect, but
schemathesis' client (requests on ``http.client``) skips only ``100``: it takes the 104 for
the final answer and reads the real one as the reply to its next request. So the creations
schemathesis sends go as tus creations; the draft's are covered by ``tests/ietf/``.
"""

from __future__ import annotations

from typing import Any

import schemathesis

INTEROP = "upload-draft-interop-version"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.method.upper() != "POST" or not case.operation.path.startswith("/files"):
        return
    for headers in (case.headers, kwargs.get("headers")):
        if headers:
            for name in [n for n in headers if n.lower() == INTEROP]:
                del headers[name]
