"""One-shot uploads: a request whose body carries a whole image, in one place.

Two ways in: ``POST /v1/images`` (the body, or a multipart field, is the image) and a tus
creation-with-upload that carries the whole file. Either way the body is staged as the one
part of an upload nobody can name yet (so its staging need not survive a crash: ``begin``
with ``durable=False``), hashed on its way in, and goes through the completion pipeline; the
records (the image, and for tus the upload and its part with it) are written in one
transaction once the image is stored. A refused body leaves nothing behind.

A tus body that stops early (the client went silent, or away) is the exception: it is kept
as the first part of a resumable upload, so a client that gets the answer can resume.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import anyio

from pixdrop.errors import PayloadTooLarge, UnprocessableImage
from pixdrop.models import (
    ATTRIBUTION,
    Image,
    Opener,
    Part,
    Upload,
    UploadProtocol,
    UploadState,
    new_id,
)
from pixdrop.ports import MetadataStore, Staging
from pixdrop.protocols.digest import ExpectedDigests
from pixdrop.services.appends import Appender, AppendResult, Progress
from pixdrop.services.completion import Completion, Staged, StoredImage
from pixdrop.services.grants import check_open, too_large_body
from pixdrop.services.lifecycle import Lifecycle, token
from pixdrop.services.metering import Body, Checksum, checksum_algorithms

__all__ = ["OneShot"]


class OneShot:
    """Whole images in one request body (see the module docstring)."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        completion: Completion,
        staging: Staging,
        meta: MetadataStore,
        appender: Appender,
        max_request_size: int,
    ) -> None:
        self.lifecycle = lifecycle
        self.completion = completion
        self.staging = staging
        self.meta = meta
        self.appender = appender
        self.max_request_size = max_request_size

    async def put_single(
        self,
        body: AsyncIterator[bytes],
        *,
        expected: ExpectedDigests,
        filename: str | None,
        opener: Opener | None = None,
    ) -> StoredImage:
        """Store a whole image sent in one request body (``POST /v1/images``), within the
        *opener*'s grant if it has one."""
        grant = opener.grant if opener else None
        limit, too_long = self.max_request_size, self._too_large
        if grant is not None:
            check_open(grant, None, self.lifecycle.clock())
            if grant.max_size is not None and grant.max_size < limit:
                limit, too_long = grant.max_size, too_large_body(grant)
        if self.lifecycle.hook is not None:
            await self.lifecycle.admit(
                self.lifecycle.new("native", None, filename=filename), "one-request"
            )
        staging_id = new_id()
        self.completion.codec.prepare()
        store_token = await self.staging.begin(staging_id, durable=False)
        try:
            stream = Body(
                body,
                limit=limit,
                too_long=too_long,
                expected=expected,
                head_size=self.completion.prober.head_size,
            )
            stream.store_hashes_sha256()  # the part's receipt is the body's sha256
            part = await self.staging.put_part(
                staging_id, store_token, number=0, offset=0, data=stream, observe=stream.observe
            )
            stream.verify_digests("request body", sha256=part.sha256)
            if part.length == 0:
                raise UnprocessableImage(
                    "The request body is empty; send the image's bytes.", reason="empty"
                )
            key = await self.staging.finish(staging_id, store_token, [part])
            who = ATTRIBUTION.get()
            staged = Staged(
                staging_id, store_token, key, part.length, part.sha256, stream.head,
                owner=who.owner, private=who.private, grant_id=grant.id if grant else None,
            )  # fmt: skip
            return await self.completion.ingest(
                staged, filename=filename, record=self.meta.create_image
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.staging.abort(staging_id, store_token)
            raise

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The body is larger than the one-request limit of {self.max_request_size} bytes; "
            "use a chunked upload (POST /v1/uploads) for large images.",
            limit="max_request_size",
            allowed=self.max_request_size,
        )

    async def create_whole(
        self,
        *,
        protocol: UploadProtocol,
        length: int,
        body: AsyncIterator[bytes],
        metadata: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        checksum: Checksum | None = None,
        trailer_checksum: Callable[[], Checksum | None] | None = None,
        opener: Opener | None = None,
    ) -> AppendResult:
        """Create an upload of *length* (> 0) bytes from a request whose *body* holds them all.

        Answers like creating the upload and appending at offset 0 (module docstring).
        """
        self.lifecycle.check_size(length)
        upload = self.lifecycle.new(
            protocol,
            length,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            opener=opener,
        )
        upload = await self.lifecycle.admit(upload)
        stream = Body(
            body,
            limit=length,
            too_long=self.appender.too_long(upload, 0, length),
            checksums=checksum_algorithms(checksum, trailer_checksum),
            idle_timeout=self.appender.idle_timeout,
            head_size=self.completion.prober.head_size,
        )
        upload = replace(upload, store_token=await self.staging.begin(upload.id, durable=False))
        try:
            part = await self.staging.put_part(
                upload.id, token(upload), number=0, offset=0, data=stream,
                observe=stream.observe,
            )  # fmt: skip
            written = stream.kept(part.length, checksum, trailer_checksum)
            if written != length:  # interrupted: keep what arrived, resumable from there
                return await self._keep_partial(upload, part if written else None, stream)
            return await self._complete_whole(upload, part, stream.head)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.staging.abort(upload.id, token(upload))
            raise

    async def _complete_whole(self, upload: Upload, part: Part, head: bytes) -> AppendResult:
        """All the bytes arrived: the image, the upload and its part, in one transaction."""
        completed = replace(upload, state=UploadState.COMPLETED)

        async def record(image: Image) -> None:
            done = replace(completed, image_id=image.id)
            await self.meta.create_upload(done, parts=[part], image=image)

        store_token = token(upload)
        key = await self.staging.finish(upload.id, store_token, [part])
        staged = Staged(
            upload.id, store_token, key, part.length, part.sha256, head,
            owner=upload.owner, private=upload.private, grant_id=upload.grant_id,
        )  # fmt: skip
        stored = await self.completion.ingest(staged, filename=upload.filename, record=record)
        completed = replace(completed, image_id=stored.image.id)
        progress = Progress(completed, part.length, part.length, stored.image)
        return AppendResult(progress, stored, False)

    async def _keep_partial(self, upload: Upload, part: Part | None, stream: Body) -> AppendResult:
        """A body that stopped early becomes a resumable upload holding what arrived."""
        await self.staging.begin(upload.id)  # its staging now outlives a crash
        await self.meta.create_upload(upload, parts=[part] if part else [])
        offset = part.length if part else 0
        progress = Progress(upload, offset, upload.size, None)
        return AppendResult(progress, None, stream.interrupted)
