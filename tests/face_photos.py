"""Test photos composed from the shared real photos: faces of chosen sizes on one canvas."""

from __future__ import annotations

import io

from conftest import FACES
from PIL import Image

# The shorter side of each photo's face box as the detector measures it (full resolution), and
# a crop that holds the face with room around it.
_SOURCES = {
    "obama": ("obama.jpg", 267, None),
    "biden": ("biden.jpg", 307, (0, 0, 970, 1200)),
}


def composed(canvas: tuple[int, int], faces: list[tuple[str, int, tuple[int, int]]]) -> bytes:
    """A PNG of `canvas` size with each (person, face_px, top-left corner) pasted on grey."""
    out = Image.new("RGB", canvas, (120, 120, 120))
    for who, face_px, corner in faces:
        name, box_px, crop = _SOURCES[who]
        im = Image.open(FACES / name).convert("RGB")
        if crop:
            im = im.crop(crop)
        scale = face_px / box_px
        out.paste(im.resize((round(im.width * scale), round(im.height * scale))), corner)
    buf = io.BytesIO()
    out.save(buf, "PNG")
    return buf.getvalue()


def pair_107_75() -> bytes:
    """The issue's pair: Obama's face at ~107 px beside Biden's at ~75 px (under the 80 px
    enrollment floor, over the 50 px check-in floor)."""
    return composed((640, 480), [("obama", 107, (20, 20)), ("biden", 75, (426, 160))])


def large_with_small_rival() -> bytes:
    """A 1600x1200 photo: a 300 px subject and a ~60 px second face that the 640 px look of a
    check-in cannot see."""
    return composed((1600, 1200), [("obama", 300, (20, 20)), ("biden", 60, (1066, 400))])


def subject_with_background_face() -> bytes:
    """A 260 px subject and a ~30 px face far behind."""
    return composed((640, 480), [("obama", 260, (20, 20)), ("biden", 30, (426, 160))])
