"""The table of image formats (``pixdrop.formats``) is whole, and the modules that name formats
read it: settings, the prober, the decoder's loaders and savers, GPS stripping, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixdrop import models
from pixdrop.cli.transfer import IMAGE_SUFFIXES
from pixdrop.config import KNOWN_FORMATS, ConfigError, Settings, load_settings
from pixdrop.formats import (
    BY_NAME,
    DEFAULT_NAMES,
    FORMATS,
    NAMES,
    NEGOTIATED,
    VARIANT_FORMATS,
    fallback_variant,
)
from pixdrop.imaging import HeaderProber, gps, headers
from pixdrop.imaging.validate import CONTENT_TYPES

DATA = Path(__file__).parent.parent / "data"


def test_every_format_is_described() -> None:
    assert len(set(NAMES)) == len(FORMATS)
    for fmt in FORMATS:
        assert fmt.name.isascii(), fmt
        assert fmt.name.islower(), fmt
        assert fmt.display.lower() == fmt.name, fmt
        assert fmt.media_type.startswith("image/"), fmt
        assert fmt.extensions, fmt
        assert all(e.startswith(".") and e == e.lower() for e in fmt.extensions), fmt
        assert fmt.signatures or fmt.brands, f"{fmt.name} cannot be sniffed"
        assert fmt.container in headers._PARSERS, f"{fmt.name} has no header parser"
        assert fmt.loader, fmt
        assert BY_NAME[fmt.gps_free_as].saver, fmt
        if fmt.variant is not None:
            assert fmt.saver is not None, fmt
            assert 1 <= fmt.variant.quality <= 100, fmt
    extensions = [e for fmt in FORMATS for e in fmt.extensions]
    assert len(extensions) == len(set(extensions))


def test_the_table_keeps_what_the_code_said_before_it() -> None:
    """The values each module used to spell out for itself."""
    assert NAMES == ("jpeg", "png", "gif", "webp", "avif", "tiff", "heic")
    assert NAMES[:-1] == DEFAULT_NAMES
    assert {name: f"image/{name}" for name in NAMES} == models.MEDIA_TYPES
    assert {f.name: f.loader for f in FORMATS if f.loader != f.name} == {
        "avif": "heif",
        "heic": "heif",
    }
    assert {f.name for f in FORMATS if f.animated} == {"gif", "webp"}
    assert {f.name for f in FORMATS if f.keeps_alpha} == {"png", "webp", "avif"}
    assert {"gif", "avif", "heic", "tiff"} == gps.XMP_ANYWHERE
    assert {name: models.gps_free_format(name) for name in NAMES} == {
        "jpeg": "jpeg",
        "png": "png",
        "gif": "jpeg",
        "webp": "webp",
        "avif": "avif",
        "tiff": "tiff",
        "heic": "jpeg",
    }
    assert models.gps_free_format("bmp") == "jpeg"
    # services/renditions.py: the variant formats offered, their default quality, format=auto
    assert VARIANT_FORMATS == ("webp", "avif", "jpeg", "png")
    assert {f.name: f.variant.quality for f in FORMATS if f.variant} == {
        "webp": 80,
        "avif": 55,
        "jpeg": 82,
        "png": 100,
    }
    assert NEGOTIATED == ("avif", "webp")
    assert (fallback_variant(True), fallback_variant(False)) == ("png", "jpeg")


def test_settings_accept_exactly_the_tables_names() -> None:
    assert KNOWN_FORMATS == NAMES
    assert ",".join(NAMES) in (Settings.model_fields["formats"].description or "")
    assert load_settings({}, formats=",".join(NAMES).upper()).format_list == NAMES
    with pytest.raises(ConfigError, match=",".join(NAMES)):
        load_settings({}, formats="bmp")


def test_the_prober_accepts_the_default_formats_and_knows_every_one() -> None:
    assert {f.name: f.media_type for f in FORMATS if f.name in DEFAULT_NAMES} == CONTENT_TYPES
    assert HeaderProber().allowed_formats == DEFAULT_NAMES
    assert HeaderProber(NAMES).content_types == models.MEDIA_TYPES


def test_every_signature_sniffs_as_its_format() -> None:
    for fmt in FORMATS:
        for signature in fmt.signatures:
            head = bytearray(64)
            for offset, magic in signature:
                head[offset : offset + len(magic)] = magic
            assert headers.sniff(bytes(head)) == fmt.name
        for brand in fmt.brands:
            assert headers.sniff(b"\x00\x00\x00\x10ftyp" + brand + bytes(4)) == fmt.name


def test_cli_suffixes_are_the_default_formats_extensions() -> None:
    assert {e for name in DEFAULT_NAMES for e in BY_NAME[name].extensions} == IMAGE_SUFFIXES
    assert {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".tif", ".tiff"} == IMAGE_SUFFIXES


@pytest.mark.parametrize(
    "path", sorted(p for p in DATA.iterdir() if p.is_file()), ids=lambda p: p.name
)
def test_sample_images_match_the_table(path: Path) -> None:
    info = HeaderProber().probe(path.read_bytes())
    assert path.suffix in BY_NAME[info.format].extensions
    assert info.content_type == BY_NAME[info.format].media_type == models.MEDIA_TYPES[info.format]


def test_libvips_has_every_loader_and_saver() -> None:
    pyvips = pytest.importorskip("pyvips")
    for fmt in FORMATS:
        assert pyvips.type_find("VipsOperation", f"{fmt.loader}load_buffer") != 0, fmt.name
        if fmt.saver is not None:
            assert pyvips.type_find("VipsOperation", f"{fmt.saver}save_buffer") != 0, fmt.name
