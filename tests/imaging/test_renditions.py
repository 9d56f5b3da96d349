"""Renditions at the service level: single flight, and variant requests resolved by the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from pixdrop.config import Settings
from pixdrop.errors import BadRequest, NotFound
from pixdrop.http.app import Backends, build_runtime
from pixdrop.metadata import open_metadata_store
from pixdrop.metadata.leases import open_leases
from pixdrop.models import Fit, ImageDetails, ImageLimits, VariantSpec
from pixdrop.protocols.digest import ExpectedDigests
from pixdrop.services.leases import LeaseKeeper
from pixdrop.services.renditions import RenditionService, VariantRequest, accepts
from pixdrop.storage.local import LocalStore
from tests.http.helpers import tiny_image


class CountingCodec:
    """An ``ImageCodec`` whose renders are slow and counted."""

    decodes = ("jpeg", "png")
    encodes = ("webp", "avif", "jpeg", "png")

    def __init__(self) -> None:
        self.renders = 0

    async def inspect(self, source: Any, fmt: str, limits: ImageLimits) -> ImageDetails:
        return ImageDetails(3, 2, 1, 1, False, "AAAA", False)

    async def render(self, source: Any, fmt: str, spec: VariantSpec) -> bytes:
        self.renders += 1
        await anyio.sleep(0.2)  # long enough for every other request to arrive meanwhile
        return f"rendered {spec.name}".encode()

    async def strip_gps(self, source: Any, fmt: str) -> bytes | None:
        return None

    def prepare(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def scenario(root: Path, requests: int) -> tuple[int, set[bytes]]:
    settings = Settings(data_dir=root, formats="jpeg,png", variant_presets="thumb=2")
    meta = open_metadata_store(settings.resolved_database_url)
    codec = CountingCodec()
    leases = open_leases(meta)
    keeper = LeaseKeeper(leases, lock_wait=1)
    rt = build_runtime(settings, Backends(LocalStore(root), meta, leases, keeper, codec))
    await keeper.__aenter__()

    async def body() -> Any:
        yield tiny_image()

    try:
        stored = await rt.oneshot.put_single(body(), expected=ExpectedDigests(), filename=None)
        spec = VariantSpec(2, 2, Fit.CONTAIN, "webp", 80)
        served: set[bytes] = set()

        async def one() -> None:
            rendition = await rt.renditions.variant(stored.image, spec, False)
            read = rt.renditions.read(rendition, 0, rendition.size)
            served.add(b"".join([b async for b in read]))

        async with anyio.create_task_group() as tasks:
            for _ in range(requests):
                tasks.start_soon(one)
        return codec.renders, served
    finally:
        await keeper.__aexit__(None, None, None)
        await leases.close()
        await meta.close()


def test_concurrent_requests_render_once(tmp_path: Path) -> None:
    renders, served = anyio.run(scenario, tmp_path, 8)
    assert renders == 1
    assert served == {b"rendered w2-h2-contain-q80.webp"}


@pytest.fixture
def rules() -> RenditionService:
    return RenditionService(
        images=None,  # type: ignore[arg-type]  # resolving touches no store
        codec=CountingCodec(),
        presets={"thumb": 256, "large": 2048},
        sizes=(64, 128),
        strip_gps=True,
        patience=1,
    )


def resolve(rules: RenditionService, alpha: bool = False, **fields: Any) -> tuple[Any, bool]:
    image: Any = type("I", (), {"has_alpha": alpha})()
    return rules.resolve(image, VariantRequest(**{"preset": "thumb", **fields}))


def test_resolving_requests(rules: RenditionService) -> None:
    assert resolve(rules) == (VariantSpec(256, 256, Fit.CONTAIN, "jpeg", 82), True)
    assert resolve(rules, alpha=True)[0].format == "png"
    assert resolve(rules, accept="image/avif,image/webp")[0].format == "avif"
    assert resolve(rules, accept="image/avif;q=0,image/webp")[0].format == "webp"
    spec, negotiated = resolve(rules, width="64", fit="cover", format="webp", quality="50")
    assert spec == VariantSpec(64, None, Fit.CONTAIN, "webp", 50)  # one side: nothing to crop
    assert not negotiated
    assert resolve(rules, width="2048", height="64", fit="cover")[0].fit is Fit.COVER
    assert resolve(rules, format="png", quality="10")[0].quality == 100


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"preset": "huge"}, NotFound),
        ({"width": "100"}, BadRequest),
        ({"height": "-1"}, BadRequest),
        ({"width": "\uff16\uff14"}, BadRequest),
        ({"fit": "fill"}, BadRequest),
        ({"format": "gif"}, BadRequest),
        ({"quality": "101"}, BadRequest),
    ],
)
def test_refused_requests(rules: RenditionService, fields: dict[str, str], error: type) -> None:
    with pytest.raises(error):
        resolve(rules, **fields)


def test_accept_parsing() -> None:
    assert accepts("image/avif,image/webp,*/*;q=0.8", "image/avif")
    assert accepts("IMAGE/WEBP ; q=0.5", "image/webp")
    assert not accepts("image/*,*/*", "image/avif")
    assert not accepts("image/webp;q=0", "image/webp")
    assert not accepts("image/webp;q=x", "image/webp")
