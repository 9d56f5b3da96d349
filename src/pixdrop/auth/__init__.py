"""Access control: who is asking (``Principal``), and how a bearer token says so."""

from pixdrop.auth.principal import (
    ANONYMOUS,
    GRANT_PREFIX,
    KEY_PREFIX,
    PRINCIPAL,
    SCOPES,
    Principal,
    TokenResolver,
    principal_of,
)

__all__ = [
    "ANONYMOUS",
    "GRANT_PREFIX",
    "KEY_PREFIX",
    "PRINCIPAL",
    "SCOPES",
    "Principal",
    "TokenResolver",
    "principal_of",
]
