"""pixdrop: an image upload service with one-request and chunked, resumable uploads."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pixdrop")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = ["__version__"]
