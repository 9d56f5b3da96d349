"""The one SQLAlchemy Core schema, shared by SQLite and PostgreSQL.

Six tables::

    uploads        one row per upload in progress (or completed, until swept)
    upload_parts   the byte ranges of an upload that are durable and recorded (staging receipts)
    upload_concat  the partial uploads a final (tus concatenation) upload is made of, in order
    images         one row per stored image; several may share a blob (same sha256)
    leases         who works on what right now (an upload's writer, a chunk, the sweeper)
    api_keys       API keys: a hash of each secret, scopes, limits, and quota accounting
    grants         one-time direct-upload grants (a token's hash, constraints, the image made)
    webhook_endpoints   where events are sent (``pixdrop webhooks add``)
    webhook_deliveries  the outbox: one row per event and endpoint, written with the change

The migrations in ``migrations/versions`` create exactly this schema; a contract test compares
the two, so a change here needs a new migration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)

__all__ = [
    "NAMING_CONVENTION",
    "UtcDateTime",
    "api_keys",
    "grants",
    "images",
    "leases",
    "metadata",
    "upload_concat",
    "upload_parts",
    "uploads",
    "webhook_deliveries",
    "webhook_endpoints",
]

#: Deterministic constraint names, so later migrations can refer to them by name on both
#: dialects (SQLite would otherwise leave them anonymous and batch mode could not drop them).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Ids and hex digests are made by us, so their length is known. Strings a client sends
# (file names, declared content types) are Text: VARCHAR(n) rejects overflow on PostgreSQL
# but not on SQLite, and the backends must behave alike.
ID = 22
SHA256_HEX = 64


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC and always read back as aware UTC.

    PostgreSQL keeps the instant (``timestamptz``) but returns it in the session's time zone;
    SQLite has no time zone at all and would silently drop ``tzinfo`` on write. Converting to UTC
    on the way in and re-attaching UTC on the way out makes both dialects round-trip alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Raise ``ValueError`` for naive datetimes: their instant is ambiguous."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(naming_convention=NAMING_CONVENTION)

uploads = Table(
    "uploads",
    metadata,
    Column("id", String(ID), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("chunk_size", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=True),
    Column("filename", Text, nullable=True),
    Column("content_type", Text, nullable=True),
    # No foreign key to images: an image may be deleted while its (completed) upload record
    # waits for the sweeper, and that must not be refused.
    Column("image_id", String(ID), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    # Added by migration 0003 (tus and the IETF draft): which API made the upload, whether its
    # size is still unknown (then ``size`` is 0), and tus headers kept verbatim for HEAD.
    Column("protocol", String(8), nullable=False, server_default="native"),
    Column("length_deferred", Boolean, nullable=False, server_default=false()),
    Column("upload_metadata", Text, nullable=True),
    Column("concat", Text, nullable=True),
    # Added by migration 0004: the staging port's token for the upload (``Staging.begin``).
    Column("store_token", Text, nullable=True),
    # Added by migration 0007: the client address that opened the upload (open uploads are
    # counted per address) and the direct-upload grant it presented, if any.
    Column("client", Text, nullable=True),
    Column("grant_id", String(ID), nullable=True),
    # Added by migration 0006 (access control): the key the upload counts against (no foreign
    # key: a revoked key's uploads stay), and whether its image will be private.
    Column("owner", String(ID), nullable=True),
    Column("private", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("id"),
    CheckConstraint("state IN ('receiving', 'completing', 'completed')", name="state"),
    CheckConstraint("size >= 0", name="size"),
    CheckConstraint("chunk_size > 0", name="chunk_size"),
    # The sweeper asks for the oldest expired uploads first.
    Index(None, "expires_at"),
    # Added by migration 0007: open uploads of one client address are counted.
    Index(None, "client"),
)

upload_parts = Table(
    "upload_parts",
    metadata,
    Column(
        "upload_id",
        String(ID),
        ForeignKey("uploads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("start", BigInteger, nullable=False),
    Column("end", BigInteger, nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    # Added by migration 0004: the staging port's part number and what the store called the
    # part (an S3 ETag); 0 and NULL for parts recorded before, on local disk.
    Column("number", Integer, nullable=False, server_default="0"),
    Column("etag", Text, nullable=True),
    # One part per start offset: the key that makes a second record of a chunk detectable.
    PrimaryKeyConstraint("upload_id", "start"),
    CheckConstraint('"end" >= start', name="range"),
)

upload_concat = Table(
    "upload_concat",
    metadata,
    Column(
        "final_id",
        String(ID),
        ForeignKey("uploads.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    # No foreign key: a partial upload may be terminated or swept while a final one names it;
    # the final one then cannot complete, and says so.
    Column("partial_id", String(ID), nullable=False),
    PrimaryKeyConstraint("final_id", "position"),
    # When a partial upload receives its last byte, the final uploads waiting for it are found.
    Index(None, "partial_id"),
)

images = Table(
    "images",
    metadata,
    Column("id", String(ID), nullable=False),
    Column("sha256", String(SHA256_HEX), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("format", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delete_token_hash", String(SHA256_HEX), nullable=False),
    Column("filename", Text, nullable=True),
    # Added by migration 0002 (what the decoder learnt); rows from before it keep the defaults.
    Column("frames", Integer, nullable=False, server_default="1"),
    Column("orientation", Integer, nullable=False, server_default="1"),
    Column("has_alpha", Boolean, nullable=False, server_default=false()),
    Column("placeholder", Text, nullable=True),
    Column("has_gps", Boolean, nullable=False, server_default=false()),
    # Added by migration 0006: who made the image (a key id) and whether it is private.
    Column("owner", String(ID), nullable=True),
    Column("private", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("id"),
    # Blobs are shared by content: deleting an image must count the other references.
    Index(None, "sha256"),
    # Added by migration 0005: listing pages newest first (GET /v1/images) seek on it.
    Index("ix_images_created_at_id", "created_at", "id"),
    # Added by migration 0006: a key's own images, newest first (GET /v1/images with a key).
    Index("ix_images_owner_created_at_id", "owner", "created_at", "id"),
)

#: Added by migration 0007. One-time direct-upload grants (``POST /v1/direct-uploads``): only
#: the sha256 of the token is kept; ``image_id`` is set once, by a conditional update, by the
#: upload that made the grant's image.
grants = Table(
    "grants",
    metadata,
    Column("id", String(ID), nullable=False),
    Column("token_hash", String(SHA256_HEX), nullable=False),
    Column("owner", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("max_size", BigInteger, nullable=True),
    Column("formats", Text, nullable=True),
    Column("metadata", Text, nullable=True),
    Column("private", Boolean, nullable=False, server_default=false()),
    Column("image_id", String(ID), nullable=True),
    Column("used_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("id"),
    Index(None, "expires_at"),
)

#: Added by migration 0004. A lease is an exclusive claim on a key (``upload/<id>`` for the
#: request writing a resumable upload, ``chunk/<id>/<n>`` for one chunk, ``sweeper``) that
#: every process and node sees. It ends when released, or when ``expires_at`` passes without
#: a renewal (its holder died). ``stop`` is a newer request asking the holder to step aside.
leases = Table(
    "leases",
    metadata,
    Column("key", String(128), nullable=False),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("stop", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("key"),
)

#: Added by migration 0008. Where events go: a URL, the event types it wants (comma-separated)
#: and the signing secret (``whsec_<base64>``, Standard Webhooks).
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(ID), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("id"),
)

#: Added by migration 0008. The outbox: a row per event and subscribed endpoint, inserted in
#: the transaction of the change it reports (``webhooks/events.py``), sent by
#: ``webhooks/sender.py``. ``seq`` orders the events of one ``resource`` (``upload/<id>``,
#: ``image/<id>``); ``event_id`` is the ``webhook-id`` every attempt carries.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), nullable=False, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column(
        "endpoint_id",
        String(ID),
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("resource", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("seq"),
    CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
    # The sender asks for the due pending rows, and for earlier pending rows of a resource.
    Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    Index("ix_webhook_deliveries_endpoint_resource", "endpoint_id", "resource", "seq"),
)

#: Added by migration 0006. An API key: ``id`` is public (it is part of the secret, so a
#: secret is looked up by primary key), ``secret_hash`` the sha256 of the secret's random
#: part. ``used_bytes`` and ``open_uploads`` are the key's quota accounting, changed only by
#: conditional UPDATEs in the transactions that create or free uploads and images.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), nullable=False),
    Column("name", Text, nullable=False),
    Column("secret_hash", String(SHA256_HEX), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("quota", BigInteger, nullable=True),
    Column("max_open_uploads", Integer, nullable=True),
    Column("rate", Text, nullable=True),
    Column("used_bytes", BigInteger, nullable=False, server_default="0"),
    Column("open_uploads", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("id"),
)
