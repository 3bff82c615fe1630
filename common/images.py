"""Opening untrusted image bytes with Pillow: the one place for the limits every reader applies.

Upload scanning (common/scanning.py) and the face pipeline (worker/face_pipeline.py) both open
images a client sent; both go through `opened_image`, so a decompression bomb, a truncated file
or an unexpected format is refused the same way everywhere.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# Why an image was refused (also reason codes of a rejected upload, see common/scanning.py).
UNDECODABLE_IMAGE = "undecodable_image"
TOO_MANY_PIXELS = "too_many_pixels"


class ImageRejected(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@contextmanager
def opened_image(
    source: bytes | IO[bytes], *, max_pixels: int, formats: Iterable[str] | None = None
) -> Iterator[Image.Image]:
    """The image, opened but not yet decoded, for the caller to load within the block.

    The pixel count is read from the header and refused before anything is decoded, so a
    decompression bomb costs nothing (Pillow's own limit, Image.MAX_IMAGE_PIXELS, also holds);
    `formats` pins the decoders tried (EPS would run Ghostscript). Any failure, in the opening
    or in the caller's decoding, raises ImageRejected(TOO_MANY_PIXELS or UNDECODABLE_IMAGE).
    """
    from PIL import Image  # imported on first use: the API process never opens an image

    fp = io.BytesIO(source) if isinstance(source, bytes | bytearray | memoryview) else source
    with warnings.catch_warnings(), _refuse_truncated_images():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fp, formats=list(formats) if formats else None) as im:
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageRejected(
                        TOO_MANY_PIXELS,
                        f"{width}x{height} pixels is more than the {max_pixels:,} allowed",
                    )
                yield im
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected(TOO_MANY_PIXELS, str(exc)[:200]) from None
        except Exception as exc:  # hostile input makes Pillow raise almost anything
            raise ImageRejected(UNDECODABLE_IMAGE, f"{type(exc).__name__}: {exc}"[:200]) from None


@contextmanager
def _refuse_truncated_images() -> Iterator[None]:
    """face_recognition sets Pillow's process-wide LOAD_TRUNCATED_IMAGES to True when imported
    (as in a worker that also runs face tasks): a cut-off file would then "decode" with a
    grey-filled tail. Workers are single-threaded prefork children: nothing races with this."""
    from PIL import ImageFile

    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
