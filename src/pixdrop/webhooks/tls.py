"""One TLS context for the process's outbound HTTP (webhook deliveries, the pre-create hook).

Building a default context loads the whole CA bundle, about a quarter of a second of CPU;
httpx builds one per client. Every app a process builds (``--workers`` reloads, test suites)
shares this one instead. It honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as httpx does.
"""

from __future__ import annotations

import functools
import ssl

import httpx

__all__ = ["client_context"]


@functools.cache
def client_context() -> ssl.SSLContext:
    """The verifying client context (certificates and host names checked), built once."""
    return httpx.create_ssl_context(trust_env=True)
