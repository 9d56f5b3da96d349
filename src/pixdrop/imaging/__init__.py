"""Image handling.

* ``validate`` and ``headers``: sniffing formats and dimensions from header bytes (pure, in
  the server); the formats themselves are the table in ``pixdrop.formats``;
* ``codec`` and ``pool``: the ``ImageCodec`` on libvips, in worker processes under deadlines;
* ``jobs``, ``vips``, ``gps``, ``placeholder``: what runs inside those workers.
"""

from pixdrop.imaging.validate import HeaderProber

__all__ = ["HeaderProber"]
