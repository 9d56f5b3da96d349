"""Image handling: sniffing formats and dimensions from header bytes (``validate``)."""

from pixdrop.imaging.validate import HeaderProber

__all__ = ["HeaderProber"]
