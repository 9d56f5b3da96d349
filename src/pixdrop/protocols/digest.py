"""RFC 9530 ``Content-Digest`` / ``Repr-Digest`` fields: parse, and check bytes against them.

The field is a structured-field dictionary whose values are byte sequences
(``sha-256=:<base64>:, sha-512=:<base64>:``). pixdrop verifies sha-256 and sha-512; the
RFC's deprecated algorithms (md5, sha, crc32c, ...) are ignored as it allows, but a field that
names no algorithm pixdrop can check is refused: silently skipping the check would defeat it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from pixdrop.errors import DigestMismatch, InvalidDigest

SUPPORTED = {"sha-256": "sha256", "sha-512": "sha512"}
_MEMBER = re.compile(r"^\s*([a-z][a-z0-9_.*-]*)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")


@dataclass(frozen=True, slots=True)
class ExpectedDigests:
    """Digests a client announced for some bytes, keyed by hashlib name (``sha256``...)."""

    values: dict[str, bytes] = field(default_factory=dict)
    header: str = ""

    def __bool__(self) -> bool:
        return bool(self.values)

    def hashers(self) -> dict[str, hashlib._Hash]:
        """Fresh hash objects for every algorithm to check."""
        return {name: hashlib.new(name) for name in self.values}


def parse_digest_field(value: str, header: str = "Content-Digest") -> ExpectedDigests:
    """Parse a digest field; raise ``InvalidDigest`` with a helpful message when malformed."""
    found: dict[str, bytes] = {}
    for member in value.split(","):
        match = _MEMBER.match(member)
        if not match:
            raise InvalidDigest(
                f"{header} is malformed: expected e.g. sha-256=:<base64 digest>: (RFC 9530).",
                header=header,
            )
        algorithm, encoded = match.group(1), match.group(2)
        if algorithm not in SUPPORTED:
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise InvalidDigest(
                f"{header} {algorithm} is not valid base64.", header=header
            ) from exc
        expected_len = hashlib.new(SUPPORTED[algorithm]).digest_size
        if len(raw) != expected_len:
            raise InvalidDigest(
                f"{header} {algorithm} must be {expected_len} bytes, got {len(raw)}.",
                header=header,
            )
        found[SUPPORTED[algorithm]] = raw
    if not found:
        raise InvalidDigest(
            f"{header} names no supported algorithm; use one of {', '.join(SUPPORTED)}.",
            header=header,
            supported=sorted(SUPPORTED),
        )
    return ExpectedDigests(found, header)


def merge(*fields: ExpectedDigests) -> ExpectedDigests:
    """Combine the digests of several fields (Content-Digest and Repr-Digest)."""
    values: dict[str, bytes] = {}
    names = []
    for f in fields:
        if f:
            values.update(f.values)
            names.append(f.header)
    return ExpectedDigests(values, " and ".join(names))


def verify(expected: ExpectedDigests, computed: dict[str, bytes], what: str) -> None:
    """Raise ``DigestMismatch`` unless every expected digest equals the computed one."""
    for name, want in expected.values.items():
        got = computed[name]
        if got != want:
            algorithm = next(k for k, v in SUPPORTED.items() if v == name)
            raise DigestMismatch(
                f"The {what} does not match its {expected.header} ({algorithm}): "
                "the bytes were damaged or the digest is wrong. Nothing was stored; send again.",
                algorithm=algorithm,
                expected=base64.b64encode(want).decode(),
                actual=base64.b64encode(got).decode(),
            )
