"""Image handling.

* ``validate``: sniffing formats and dimensions from header bytes (pure, in the server);
* ``codec`` and ``pool``: the ``ImageCodec`` on libvips, in worker processes under deadlines;
* ``jobs``, ``vips``, ``gps``, ``placeholder``: what runs inside those workers.
"""

from pixdrop.imaging.validate import HeaderProber

__all__ = ["HeaderProber"]
