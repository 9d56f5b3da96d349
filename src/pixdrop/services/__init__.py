"""Services own the rules: upload life cycle, chunks, appends, completion, images.

Each is a small object; ``http/app.py`` (the composition root) builds them on the ports.
"""

from pixdrop.services.completion import Completion, StoredImage
from pixdrop.services.images import ImageService
from pixdrop.services.lifecycle import Lifecycle, UploadLimits
from pixdrop.services.uploads import ChunkReceipt, UploadService, UploadStatus

__all__ = [
    "ChunkReceipt",
    "Completion",
    "ImageService",
    "Lifecycle",
    "StoredImage",
    "UploadLimits",
    "UploadService",
    "UploadStatus",
]
