"""Settings: units, bounds, clear errors, unknown variables refused, every setting documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixdrop.config import ConfigError, Settings, load_settings, unknown_env_names

ROOT = Path(__file__).resolve().parents[2]


def test_sizes_take_units() -> None:
    s = load_settings({}, default_chunk_size="4MiB", max_image_size="1GiB")
    assert s.default_chunk_size == 4 * 1024 * 1024
    assert s.max_image_size == 1024**3


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    s = load_settings({}, data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'pixdrop.db'}"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"port": "notanumber"}, "port"),
        ({"port": 70000}, "port"),
        ({"max_chunk_size": -5}, "max_chunk_size"),
        ({"workers": 0}, "workers"),
        ({"min_chunk_size": "10MiB", "max_chunk_size": "1MiB"}, "min_chunk_size"),
        ({"upload_ttl": 0}, "upload_ttl"),
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({}, **overrides)
    assert needle in str(info.value)


def test_unknown_pixdrop_variables_are_refused() -> None:
    assert unknown_env_names({"PIXDROP_BOGUS": "1", "PIXDROP_PORT": "1", "HOME": "/"}) == [
        "PIXDROP_BOGUS"
    ]
    with pytest.raises(ConfigError, match="PIXDROP_BOGUS"):
        load_settings({"PIXDROP_BOGUS": "1"})


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}`" in docs, name
        assert f"`PIXDROP_{name.upper()}`" in docs, name
