"""Property tests for the size settings (``config.py``): a size with a unit is that many
bytes by a reference table of units (RFC-free, as pydantic's ``ByteSize`` documents them:
decimal kB..EB, binary KiB..EiB, case-insensitive); any text gives a positive size or a
``ConfigError`` from ``load_settings``, never another exception."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given
from hypothesis import strategies as st

from pixdrop.config import ConfigError, load_settings

UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def size_of(text: str) -> int:
    return int(load_settings({}, max_image_size=text).max_image_size)


@given(
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(sorted(UNITS)),
    st.sampled_from([str.lower, str.upper, str.title]),
    st.sampled_from(["", " "]),
)
def test_whole_sizes_with_units_are_that_many_bytes(n: int, unit: str, case, space: str) -> None:
    assert size_of(f"{n}{space}{case(unit)}") == n * UNITS[unit]


@given(
    st.decimals(min_value=Decimal("0.5"), max_value=Decimal(1000), places=2),
    st.sampled_from(["kib", "mib", "gib", "kb", "mb"]),
)
def test_fractional_sizes_are_whole_bytes(n: Decimal, unit: str) -> None:
    assert size_of(f"{n}{unit}") == int(n * UNITS[unit])


@given(st.integers(min_value=1, max_value=2**62))
def test_plain_byte_counts_round_trip(n: int) -> None:
    assert size_of(str(n)) == n
    assert int(load_settings({}, max_request_size=n).max_request_size) == n


@given(st.text(alphabet="0123456789.-+ eEkKmMgGtTiIbB", max_size=12) | st.text(max_size=12))
@example("0")
@example("0MiB")
@example("-1")
@example("1.5")
@example("1e3")
@example("MiB")
@example("8 MiBs")
def test_any_text_is_a_positive_size_or_a_config_error(text: str) -> None:
    try:
        size = size_of(text)
    except ConfigError as exc:
        refusal = str(exc)
    else:
        assert size > 0
        return
    assert "max_image_size" in refusal
