"""Client images are opened in one place, common.images.opened_image: upload scanning and the
face pipeline refuse a bomb, a truncated file or an unlisted format by the same rules."""

from __future__ import annotations

import io
import re

import pytest
from helpers import ROOT
from PIL import Image

from common.images import TOO_MANY_PIXELS, UNDECODABLE_IMAGE, ImageRejected, opened_image


def test_only_common_images_opens_images_in_the_product() -> None:
    openers = sorted(
        str(path.relative_to(ROOT))
        for package in ("api", "common", "worker")
        for path in (ROOT / package).rglob("*.py")
        if re.search(r"\bImage\.open\(|LOAD_TRUNCATED_IMAGES\s*=", path.read_text())
    )
    assert openers == ["common/images.py"]


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "PNG")
    return buf.getvalue()


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(ImageRejected) as info, opened_image(_png((300, 200)), max_pixels=50_000):
        pytest.fail("the block must not run")
    assert info.value.reason == TOO_MANY_PIXELS
    assert "300x200" in info.value.detail


def test_failures_in_the_callers_decoding_are_undecodable() -> None:
    cut = _png((64, 64), "L")[:-30]
    with pytest.raises(ImageRejected) as info, opened_image(cut, max_pixels=10**6) as im:
        im.load()
    assert info.value.reason == UNDECODABLE_IMAGE


def test_formats_are_pinned() -> None:
    png = _png((8, 8))
    with (
        pytest.raises(ImageRejected) as info,
        opened_image(png, max_pixels=10**6, formats=["JPEG"]),
    ):
        pytest.fail("a PNG must not open as a JPEG")
    assert info.value.reason == UNDECODABLE_IMAGE
