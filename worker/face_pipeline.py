"""Face pipeline: image bytes -> RGB array -> face boxes -> 128-d encodings (sync, worker only).

face_recognition (dlib plus ~100 MB of models) is imported on first use, so importing this module
is cheap; call `preload()` in `worker_process_init` to pay the load before the first task.

Where the time goes (2 cores, dlib-bin without BLAS): HOG detection with the library's default
single upsample costs ~0.4 s per megapixel; one encoding ~0.1-0.15 s per face whatever the image
size. So faces are detected on a copy downscaled to <= 640 px (longest side), first without
upsampling (~20-50 ms, finds faces down to ~60 px in that copy), and only if that finds no usable
face, once more with one upsample (down to ~30 px). The boxes are mapped back and encoded on the
full-resolution image: encoding a downscaled copy saves no time and moves encodings by ~0.1.
bench/bench_faces.py compares speed and identity decisions with the library defaults.

Enrollment looks twice (`encode_enrollment_face`): the check-in look finds and encodes the
subject, then, when that look could not see faces down to the rival floor, a finer look (one
upsample on a copy of at most 1600 px, ~0.2-0.6 s) searches for a second person.

Comparing encodings and the enrollment rule are pure and live in common/faces.py.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from common.faces import choose_enrollment_face, rival_floor_px
from common.images import TOO_MANY_PIXELS, ImageRejected, opened_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_FACE_PX",
    "DETECTOR_NAME",
    "ENROLL_MIN_FACE_PX",
    "ENROLL_RIVAL_MAX_SIDE",
    "GROUP_DETECT_MAX_SIDE",
    "MODEL_NAME",
    "SINGLE_DETECT_MAX_SIDE",
    "Detection",
    "FaceBox",
    "FaceError",
    "FaceErrorCode",
    "FaceQuality",
    "decode_image",
    "detect_faces",
    "encode_all_faces",
    "encode_enrollment_face",
    "encode_single_face",
    "preload",
]

# Stored beside each encoding: encodings of different models must never be compared.
MODEL_NAME = "dlib_face_recognition_resnet_model_v1"
DETECTOR_NAME = "dlib_hog_frontal_face_detector"

DEFAULT_MAX_PIXELS = 50_000_000  # a 48 MP phone photo passes; ~150 MB as an RGB array
# Face size is the shorter side of dlib's box (roughly brows to chin). Same-person distance grows
# as faces shrink (measured: 0.14 at 80 px, 0.23 at 50 px, 0.42 at 28 px): enroll strictly,
# accept check-ins a little smaller (the shared 240p frame has a 62 px face).
DEFAULT_MIN_FACE_PX = 50
ENROLL_MIN_FACE_PX = 80
SINGLE_DETECT_MAX_SIDE = 640  # selfie/check-in: the face is large, so a small copy suffices
GROUP_DETECT_MAX_SIDE = 1600  # class photo: faces are small; ~1 s of detection at most
ENROLL_RIVAL_MAX_SIDE = GROUP_DETECT_MAX_SIDE  # enrollment's look for a second person
# The smallest box (px in the detection copy) HOG finds for sure, by upsample: its window is
# 80 px and an upsample halves it (measured: boxes of 72 and 36 px for faces of ~55 and ~30 px).
_SURE_BOX_PX = (80, 40)

# Pillow plugins we decode. Anything else (EPS runs Ghostscript, exotic formats add attack
# surface) is rejected before a decoder runs. JPEG includes MPO, which many phones write.
_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})

FaceErrorCode = Literal[
    "bad_image", "image_too_large", "no_face", "multiple_faces", "face_too_small"
]
RGBImage = npt.NDArray[np.uint8]


class FaceError(Exception):
    """A problem with the photo itself, to report to the user (never a bug or an outage)."""

    def __init__(self, code: FaceErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: FaceErrorCode = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FaceBox:
    """Pixel box in the full-resolution image, face_recognition's (top, right, bottom, left)."""

    top: int
    right: int
    bottom: int
    left: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> int:
        return min(self.width, self.height)

    def holds_center_of(self, other: FaceBox) -> bool:
        """Is `other`'s centre inside this box (the same face, seen in another look)?"""
        cy, cx = (other.top + other.bottom) / 2, (other.left + other.right) / 2
        return self.top <= cy <= self.bottom and self.left <= cx <= self.right

    def css(self) -> tuple[int, int, int, int]:
        return (self.top, self.right, self.bottom, self.left)


@dataclass(frozen=True, slots=True)
class Detection:
    box: FaceBox
    score: float  # HOG detector margin, see FaceQuality


@dataclass(frozen=True, slots=True)
class FaceQuality:
    """How usable an enrolled/checked-in face is.

    face_px: shorter side of the face box in the full-resolution image; size_ratio = face_px /
    min_face_px (>= 1 by construction; larger encodes more reliably). detector_score: the HOG
    detector's SVM margin (> 0 means detected; ~1.5-2.5 for the frontal shared photos, 0.9 for a
    face cut by the image edge, near 0 for a turned or blurred face).
    """

    face_px: int
    min_face_px: int
    detector_score: float
    box: FaceBox

    @property
    def size_ratio(self) -> float:
        return self.face_px / self.min_face_px if self.min_face_px > 0 else float("inf")


@functools.cache
def _api() -> Any:
    # face_recognition calls quit() (SystemExit in a worker) when its models are missing.
    if importlib.util.find_spec("face_recognition_models") is None:
        raise RuntimeError("face_recognition_models is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
        import face_recognition.api as api
    return api


def preload() -> None:
    """Load dlib's models now (~0.5 s), e.g. in worker_process_init, not in the first task."""
    _api()


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> RGBImage:
    """Decode an uploaded photo to an upright RGB uint8 array of shape (h, w, 3).

    The pixel count is read from the header and refused before any pixel is decoded (also
    Pillow's own bomb limit, Image.MAX_IMAGE_PIXELS, applies). EXIF orientation is applied;
    transparency is flattened onto white. Raises FaceError bad_image / image_too_large.
    """
    if not data:
        raise FaceError("bad_image", "the file is empty")
    try:
        with opened_image(data, max_pixels=max_pixels, formats=_FORMATS) as im:
            im.load()
    except ImageRejected as exc:
        if exc.reason == TOO_MANY_PIXELS:
            raise FaceError("image_too_large", exc.detail) from exc
        raise FaceError("bad_image", "not a readable JPEG, PNG, WebP, BMP, GIF or TIFF") from exc
    width, height = im.size
    if width == 0 or height == 0:
        raise FaceError("bad_image", "the image has no pixels")

    # In place: no copy when already upright. A malformed EXIF block keeps the stored pixels.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(im, in_place=True)
    return np.ascontiguousarray(np.asarray(_to_rgb(im), dtype=np.uint8))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode == "I" or im.mode.startswith("I;16"):
        # 16-bit greyscale (PNG, TIFF): convert("RGB") would clip everything above 255 to white
        im = im.convert("I").point(lambda v: v / 256).convert("L")
    if im.mode in _ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        # Pasting through the alpha mask onto white: what alpha_composite onto opaque white
        # gives (the same pixels on the shared RGBA photo), in a sixth of the time.
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    return im.convert("RGB")  # L, P, CMYK, YCbCr...


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array (h, w, 3), got {image.dtype} {image.shape}")


def detect_faces(
    image: RGBImage, *, max_side: int = SINGLE_DETECT_MAX_SIDE, upsample: int = 1
) -> list[Detection]:
    """HOG face boxes in full-resolution coordinates, left to right.

    Detection runs on a copy whose longest side is at most `max_side`. With `upsample` 0 the
    smallest face found is ~60 px in that copy, with 1 ~30 px (each upsample costs 4x).
    """
    _check_rgb(image)
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        # reducing_gap=1: a box reduce() by the integer part of the scale first, then bilinear
        # for the rest; half the time for photos of 2 MP and more, and on the shared photos
        # the very same boxes as a direct bilinear resize.
        small = np.asarray(
            Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=1.0)
        )
    sy, sx = small.shape[0] / height, small.shape[1] / width

    rects, scores, _ = _api().face_detector.run(small, upsample, 0.0)
    found = [
        Detection(
            FaceBox(
                top=max(0, round(r.top() / sy)),
                right=min(width, round(r.right() / sx)),
                bottom=min(height, round(r.bottom() / sy)),
                left=max(0, round(r.left() / sx)),
            ),
            float(score),
        )
        for r, score in zip(rects, scores, strict=True)
    ]
    return sorted(found, key=lambda d: (d.box.left, d.box.top))


def _encode(image: RGBImage, detections: Sequence[Detection]) -> list[npt.NDArray[np.float64]]:
    if not detections:
        return []
    boxes = [d.box.css() for d in detections]
    encodings = _api().face_encodings(image, known_face_locations=boxes)
    return [np.asarray(e, dtype=np.float64) for e in encodings]


def _no_face() -> FaceError:
    return FaceError("no_face", "no face found: face the camera in good light")


def _too_small(largest_px: int, min_face_px: int) -> FaceError:
    return FaceError(
        "face_too_small",
        f"the face is {largest_px} px, at least {min_face_px} px are needed: come closer",
    )


def encode_single_face(
    image: RGBImage,
    min_face_px: int = DEFAULT_MIN_FACE_PX,
    *,
    detect_max_side: int = SINGLE_DETECT_MAX_SIDE,
) -> tuple[npt.NDArray[np.float64], FaceQuality]:
    """Encoding of the one usable face in an enrollment or check-in photo.

    Faces smaller than `min_face_px` are ignored, so a small face in the background does not
    make the photo ambiguous. Raises FaceError no_face, face_too_small (faces found, none usable)
    or multiple_faces (two or more usable faces).

    Once the cheap first look finds a usable face, faces it cannot see (under ~60 px in the
    detection copy: ~1/10 of the longest side of a photo over 640 px) are not counted either:
    they are background. Faces under ~30 px in the copy (~1/20 of the longest side) are never
    found, so a photo whose only face is that small is `no_face`, not `face_too_small`.
    """
    detections = detect_faces(image, max_side=detect_max_side, upsample=0)
    usable = [d for d in detections if d.box.size >= min_face_px]
    if not usable:
        # Second, 4x dearer look for small faces: finds them in small photos and tells "too
        # small" from "none". Faces under ~30 px in the detection copy stay invisible.
        detections = detect_faces(image, max_side=detect_max_side, upsample=1)
        usable = [d for d in detections if d.box.size >= min_face_px]
    if not usable:
        if detections:
            raise _too_small(max(d.box.size for d in detections), min_face_px)
        raise _no_face()
    if len(usable) > 1:
        raise FaceError("multiple_faces", f"{len(usable)} faces found: only one person, please")
    face = usable[0]
    (encoding,) = _encode(image, [face])
    quality = FaceQuality(
        face_px=face.box.size, min_face_px=min_face_px, detector_score=face.score, box=face.box
    )
    return encoding, quality


def _sure_floor_px(image: RGBImage, max_side: int, upsample: int) -> float:
    """Faces at least this large (full-resolution px) are surely found by that look."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    return _SURE_BOX_PX[min(upsample, 1)] / scale


def encode_enrollment_face(
    image: RGBImage,
    min_face_px: int = ENROLL_MIN_FACE_PX,
    *,
    general_floor_px: int = DEFAULT_MIN_FACE_PX,
) -> tuple[npt.NDArray[np.float64], FaceQuality]:
    """Encoding of the one person in an enrollment photo (common.faces.choose_enrollment_face):
    the largest face, at least `min_face_px`, and no second face as large as half of it or as
    `general_floor_px` (what a check-in accepts), whichever is smaller: else `multiple_faces`.

    The subject is found and encoded as a check-in photo is (same look, same box), so
    enrollment and check-in templates stay comparable. Second faces are searched with one
    upsample on a copy of at most ENROLL_RIVAL_MAX_SIDE px: every face of 40 px or more in a
    photo up to 1600 px; in larger photos, faces under 1/40 of the longest side go unseen
    (background however the rule is read).
    """
    upsample = 0
    detections = detect_faces(image, max_side=SINGLE_DETECT_MAX_SIDE, upsample=0)
    if not any(d.box.size >= min_face_px for d in detections):
        upsample = 1
        detections = detect_faces(image, max_side=SINGLE_DETECT_MAX_SIDE, upsample=1)
    _check_choice([d.box.size for d in detections], min_face_px, general_floor_px)
    subject = max(detections, key=lambda d: d.box.size)
    floor = rival_floor_px(subject.box.size, general_floor_px)
    if _sure_floor_px(image, SINGLE_DETECT_MAX_SIDE, upsample) > floor:
        # Just fine enough: faces of `floor` px become the smallest sure box of one upsample.
        side = math.ceil(max(image.shape[:2]) * _SURE_BOX_PX[1] / floor)
        finer = detect_faces(image, max_side=min(side, ENROLL_RIVAL_MAX_SIDE), upsample=1)
        others = [d.box.size for d in finer if not subject.box.holds_center_of(d.box)]
        _check_choice([subject.box.size, *others], min_face_px, general_floor_px)
    (encoding,) = _encode(image, [subject])
    quality = FaceQuality(
        face_px=subject.box.size,
        min_face_px=min_face_px,
        detector_score=subject.score,
        box=subject.box,
    )
    return encoding, quality


def _check_choice(sizes: list[int], min_face_px: int, general_floor_px: int) -> None:
    choice = choose_enrollment_face(
        sizes, min_face_px=min_face_px, general_floor_px=general_floor_px
    )
    if choice.code == "no_face":
        raise _no_face()
    if choice.code == "face_too_small":
        raise _too_small(choice.largest_px, min_face_px)
    if choice.code == "multiple_faces":
        raise FaceError(
            "multiple_faces",
            f"a second face ({choice.rival_px} px) beside the {choice.largest_px} px one: "
            "only one person, please",
        )


def encode_all_faces(
    image: RGBImage,
    *,
    min_face_px: int = 0,
    detect_max_side: int = GROUP_DETECT_MAX_SIDE,
    upsample: int = 1,
) -> list[npt.NDArray[np.float64]]:
    """Encodings of every face in a class photo, left to right (empty if there is none).

    Defaults find faces down to ~30 px in a copy of at most 1600 px (~60 px in a 3200 px photo).
    """
    detections = detect_faces(image, max_side=detect_max_side, upsample=upsample)
    return _encode(image, [d for d in detections if d.box.size >= min_face_px])
