"""Failpoints: named steps at which a test has the server killed, to prove what a crash there
leaves behind (tests/e2e/test_failpoints.py).

Off unless the environment variable ``PXD_FAILPOINT`` names a step (it is outside the
``PIXDROP_`` prefix on purpose: the settings refuse unknown ``PIXDROP_*`` names, and this is
no setting). When the process reaches that step it sends itself ``SIGKILL``: no cleanup, no
``finally``, no flush, as with a power cut of the process (not of the machine).
"""

from __future__ import annotations

import os
import signal

__all__ = ["STEPS", "VARIABLE", "reach"]

VARIABLE = "PXD_FAILPOINT"

#: The steps of completing an upload (``services/completion.py``), in order.
STEPS = (
    "completion.staged",  # the parts were made one object (finish, or join for tus concat)
    "completion.decoded",  # the object was decoded and hashed, nothing kept yet
    "completion.kept",  # the object is the content blob; no image record names it yet
    "completion.recorded",  # the image is recorded; the staged object is still there
    "completion.dropped",  # the staged object is gone; the answer is not sent yet
)


def reach(step: str) -> None:
    """Die here (``SIGKILL``) if ``PXD_FAILPOINT`` names *step*; else nothing."""
    if os.environ.get(VARIABLE) == step:
        os.kill(os.getpid(), signal.SIGKILL)
