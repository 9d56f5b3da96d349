"""pixdrop: an image upload service with one-request and chunked, resumable uploads."""

from __future__ import annotations

from functools import cache

__all__ = ["__version__"]


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pixdrop")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0"


def __getattr__(name: str) -> str:
    # ``__version__`` is looked up on first use: importlib.metadata costs a decoder worker,
    # which never asks, about 35 ms of its start.
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'pixdrop' has no attribute {name!r}")
