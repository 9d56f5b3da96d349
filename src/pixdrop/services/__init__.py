"""Services own the rules: offsets, chunk bookkeeping, completion, images."""

from pixdrop.services.images import ImageService, StoredImage
from pixdrop.services.uploads import ChunkReceipt, UploadLimits, UploadService, UploadStatus

__all__ = [
    "ChunkReceipt",
    "ImageService",
    "StoredImage",
    "UploadLimits",
    "UploadService",
    "UploadStatus",
]
