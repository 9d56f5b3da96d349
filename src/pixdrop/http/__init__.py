"""The HTTP edge: one module per wire protocol, plus the composition root (``app.py``)."""
