"""The real face photos the tests read, and photos composed from them.

The photos are listed in tests/faces.json (where each comes from, its sha256, who is in it);
they live in ../shared/faces beside the repository, or in FACES_DIR. CI fetches them with
tests/fetch_faces.py. Every test that reads them goes through this module.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT
from PIL import Image

FACES = Path(os.environ.get("FACES_DIR") or ROOT.parent / "shared" / "faces")
MANIFEST: dict[str, Any] = json.loads((Path(__file__).with_name("faces.json")).read_text())

# Who enrolls with which photo, and the other photos of Obama, each a check-in that must verify.
ENROLL = {"obama": "obama.jpg", "biden": "biden.jpg", "miranda": "lin-manuel-miranda.png"}
OBAMA_CHECK_INS = [
    "obama2.jpg",
    "obama3.jpg",
    "obama_rgba.png",
    "obama-240p.jpg",
    "obama_partial_face.jpg",
    "obama_small.jpg",
]


@functools.cache
def _missing_photos(faces: Path) -> tuple[str, ...]:
    return tuple(
        name
        for name, entry in MANIFEST["images"].items()
        if not (faces / name).is_file()
        or hashlib.sha256((faces / name).read_bytes()).hexdigest() != entry["sha256"]
    )


def require_face_photos() -> Path:
    """The photos of tests/faces.json and the face stack, or a loud failure (never a skip)."""
    if missing := _missing_photos(FACES):
        pytest.fail(
            f"face photos missing or changed in {FACES}: {', '.join(missing)} (fetch them with "
            "tests/fetch_faces.py from a face_recognition checkout; FACES_DIR overrides)",
            pytrace=False,
        )
    if importlib.util.find_spec("face_recognition") is None:
        pytest.fail("face_recognition is not installed: run `make install`", pytrace=False)
    return FACES


def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


def image_bytes(im: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    """`im` saved as a file of format `fmt`, as bytes."""
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


# Face fixtures for the worker tests, registered for the whole suite by tests/conftest.py.


@pytest.fixture(scope="module")
def templates() -> dict[str, bytes]:
    """Stored-form templates of the three enrollment photos, as the worker computes them."""
    from common.faces import encoding_to_bytes
    from worker.face_pipeline import decode_image, encode_enrollment_face

    return {
        who: encoding_to_bytes(encode_enrollment_face(decode_image(photo(name)))[0])
        for who, name in ENROLL.items()
    }


@pytest.fixture
def people(make_user: Any) -> dict[str, Any]:
    """A student per enrollment photo, named after the person."""
    return {who: make_user("student", username=who) for who in ENROLL}


@pytest.fixture
def enrolled(db: Any, people: dict[str, Any], templates: dict[str, bytes]) -> dict[str, Any]:
    """`people`, each with an approved enrollment of their photo."""
    from common import models

    for who, user in people.items():
        db.add(
            models.FaceEnrollment(
                user_id=user.id,
                encoding=templates[who],
                model="dlib_face_recognition_resnet_model_v1",
                face_px=200,
                detector_score=2.0,
                status="approved",
            )
        )
    db.commit()
    return people


async def submit_photo(
    client: Any, url: str, headers: dict[str, str], data: bytes, name: str = "photo.jpg"
) -> str:
    """Upload a photo to a face route (enroll, check-in, class photo); the job's task id."""
    r = await client.post(url, files={"file": (name, data, "image/jpeg")}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["task_id"]


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
    return image_bytes(out)


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
