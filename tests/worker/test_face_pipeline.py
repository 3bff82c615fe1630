"""worker.face_pipeline on real photos with real face_recognition (no mocks).

The photos (with known identities) come from ../shared/faces beside the repository (FACES_DIR
overrides).
"""

from __future__ import annotations

import io
import resource
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from face_photos import (
    ENROLL,
    MANIFEST,
    OBAMA_CHECK_INS,
    image_bytes,
    large_with_small_rival,
    pair_107_75,
    photo,
    require_face_photos,
    subject_with_background_face,
)
from PIL import Image

from common.faces import DEFAULT_TOLERANCE, assign_faces, encoding_from_bytes, encoding_to_bytes
from common.faces import verify as verify_face
from worker.face_pipeline import (
    DEFAULT_MIN_FACE_PX,
    ENROLL_MIN_FACE_PX,
    MODEL_NAME,
    FaceError,
    FaceQuality,
    decode_image,
    detect_faces,
    encode_all_faces,
    encode_enrollment_face,
    encode_single_face,
    preload,
)

FACES = require_face_photos()  # fails loudly without them: no skips

USER_IDS = {"obama": 1, "biden": 2, "miranda": 3}

Encoded = dict[str, tuple[np.ndarray, FaceQuality]]


@pytest.fixture(scope="module")
def encoded() -> Encoded:
    """Each single-face photo decoded and encoded once for the whole module (~0.2 s each)."""
    preload()
    return {
        name: encode_single_face(decode_image(photo(name)))
        for name in [*ENROLL.values(), *OBAMA_CHECK_INS]
    }


@pytest.fixture(scope="module")
def obama(encoded: Encoded) -> np.ndarray:
    return encoded[ENROLL["obama"]][0]


@pytest.fixture(scope="module")
def obama_image() -> Image.Image:
    return Image.open(FACES / "obama.jpg").convert("RGB")


def expect_error(code: str, fn: Callable[[], object]) -> FaceError:
    with pytest.raises(FaceError) as info:
        fn()
    assert info.value.code == code, info.value
    return info.value


def test_importing_the_pipeline_does_not_load_dlib() -> None:
    code = (
        "import sys, worker.face_pipeline; "
        "assert not {'dlib', 'face_recognition'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_model_name_is_the_model_in_use() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it imports pkg_resources
        import face_recognition_models

    location = face_recognition_models.face_recognition_model_location()
    assert Path(location).name == f"{MODEL_NAME}.dat"


@pytest.mark.parametrize("name", OBAMA_CHECK_INS)
def test_obama_check_ins_verify_as_obama(name: str, encoded: Encoded, obama: np.ndarray) -> None:
    result = verify_face(encoded[name][0], obama, DEFAULT_TOLERANCE)
    assert result.verified, result
    assert result.distance <= 0.5  # the shared photos' same-person range is 0.04-0.43


@pytest.mark.parametrize("name", ["biden.jpg", "lin-manuel-miranda.png"])
def test_other_people_do_not_verify_as_obama(
    name: str, encoded: Encoded, obama: np.ndarray
) -> None:
    result = verify_face(encoded[name][0], obama, DEFAULT_TOLERANCE)
    assert not result.verified
    assert result.distance >= 0.65


def test_encodings_survive_storage(encoded: Encoded) -> None:
    enc = encoded["obama2.jpg"][0]
    assert enc.shape == (128,)
    assert enc.dtype == np.float64
    assert np.array_equal(encoding_from_bytes(encoding_to_bytes(enc)), enc)


def test_quality_reports_face_size_and_detector_score(encoded: Encoded) -> None:
    big = encoded["obama.jpg"][1]
    small = encoded["obama-240p.jpg"][1]
    assert big.min_face_px == DEFAULT_MIN_FACE_PX
    assert big.face_px > 200  # ~267 px box in a 910x1137 photo
    assert DEFAULT_MIN_FACE_PX <= small.face_px < 100  # ~62-72 px box in a 427x240 frame
    assert big.size_ratio > small.size_ratio >= 1
    assert big.detector_score > 1.0
    assert 0 < encoded["obama_partial_face.jpg"][1].detector_score < big.detector_score
    assert big.box.size == big.face_px


def test_two_people_are_assigned_to_biden_and_obama_only(encoded: Encoded) -> None:
    facts = MANIFEST["images"]["two_people.jpg"]  # Obama stands left, Biden right
    faces = encode_all_faces(decode_image(photo("two_people.jpg")))
    assert len(faces) == facts["faces"] == 2
    candidates = {USER_IDS[who]: encoded[name][0] for who, name in ENROLL.items()}
    matches, unknown = assign_faces(faces, candidates, DEFAULT_TOLERANCE)
    # Faces come left to right, as the people are listed.
    assert sorted((m.face_index, m.user_id) for m in matches) == [
        (index, USER_IDS[who]) for index, who in enumerate(facts["people"])
    ]
    assert unknown == 0
    assert all(m.distance < 0.5 for m in matches)


def test_two_people_are_refused_as_a_single_face_photo() -> None:
    err = expect_error(
        "multiple_faces", lambda: encode_single_face(decode_image(photo("two_people.jpg")))
    )
    assert "2 faces" in err.message


def test_decode_converts_rgba_and_keeps_size() -> None:
    image = decode_image(photo("obama_rgba.png"))
    assert image.shape == (1200, 626, 3)
    assert image.dtype == np.uint8
    assert image.flags.c_contiguous


def _bad_inputs() -> dict[str, bytes]:
    jpeg, png = photo("obama.jpg"), photo("obama_rgba.png")
    idat = png.index(b"IDAT")
    flipped = bytearray(png)
    flipped[idat + 100] ^= 0xFF  # breaks the chunk CRC
    ppm = image_bytes(Image.new("RGB", (8, 8)), "PPM")  # a real image, but not an allowed format
    return {
        "empty": b"",
        "text": b"name,score\nalice,10\n",
        "random": np.random.default_rng(0).bytes(4096),
        "jpeg_truncated": jpeg[: len(jpeg) // 2],
        "jpeg_header_only": jpeg[:600],
        "png_truncated": png[: len(png) // 3],
        "png_bad_crc": bytes(flipped),
        "ppm_not_allowed": ppm,
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_unreadable_input_is_bad_image(case: str, encoded: Encoded) -> None:
    # `encoded` first: face_recognition is imported, which flips Pillow's LOAD_TRUNCATED_IMAGES.
    expect_error("bad_image", lambda: decode_image(_bad_inputs()[case]))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of one colour: ~a few dozen KB on disk, width*height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    rows_per_block = 500
    block = row * rows_per_block
    idat = b"".join(packer.compress(block) for _ in range(height // rows_per_block))
    idat += packer.compress(row * (height % rows_per_block)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("size", "max_pixels"),
    [
        ((8_000, 8_000), None),  # over our default limit, read from the header
        ((20_000, 20_000), None),  # over Pillow's hard limit: DecompressionBombError
        ((10_000, 10_000), 10**10),  # between Pillow's limits: DecompressionBombWarning
    ],
)
def test_decompression_bomb_is_refused_before_decoding(
    size: tuple[int, int], max_pixels: int | None
) -> None:
    bomb = _png_bomb(*size)
    assert len(bomb) < 1_000_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    err = expect_error("image_too_large", lambda: decode_image(bomb, **kwargs))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 50, f"peak memory grew by {grown_mb:.0f} MB"  # decoding would be >= 100 MB
    if size == (8_000, 8_000):
        assert "8000x8000" in err.message


def test_exif_orientation_is_applied(obama_image: Image.Image, obama: np.ndarray) -> None:
    # Stored sideways (rotated 90 degrees counter-clockwise) with Orientation 6 ("rotate 90
    # clockwise to display"), as phones write portrait shots.
    sideways = obama_image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = image_bytes(sideways, "JPEG", quality=92, exif=exif.tobytes())

    raw = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert detect_faces(raw, upsample=1) == []  # without the rotation HOG sees no face

    image = decode_image(data)
    assert image.shape == (obama_image.height, obama_image.width, 3)
    encoding, _ = encode_single_face(image)
    assert verify_face(encoding, obama).verified


@pytest.mark.parametrize(("mode", "fmt"), [("L", "JPEG"), ("CMYK", "JPEG"), ("P", "PNG")])
def test_other_colour_modes_work(
    mode: str, fmt: str, obama_image: Image.Image, obama: np.ndarray
) -> None:
    image = decode_image(image_bytes(obama_image.convert(mode), fmt))
    assert image.shape == (obama_image.height, obama_image.width, 3)
    if mode == "L":
        assert np.array_equal(image[..., 0], image[..., 2])
    encoding, _ = encode_single_face(image)
    result = verify_face(encoding, obama)
    assert result.verified, result


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 64 * 256).reshape(64, 256).astype(np.uint16)
    image = decode_image(image_bytes(Image.fromarray(ramp), "PNG"))
    assert image.shape == (64, 256, 3)
    assert image[0, 0, 0] == 0
    assert image[-1, -1, 0] == 255
    assert 120 <= image[32, 128, 0] <= 136


def test_image_without_a_face_is_no_face() -> None:
    ramp = np.linspace(0, 255, 800, dtype=np.uint8)
    gradient = np.stack([np.tile(ramp, (600, 1))] * 3, axis=-1)
    image = decode_image(image_bytes(Image.fromarray(gradient), "PNG"))
    expect_error("no_face", lambda: encode_single_face(image))
    assert encode_all_faces(image) == []


def _tiny_face(obama_image: Image.Image, canvas: tuple[int, int], face_px: int) -> np.ndarray:
    scale = face_px / 267  # obama.jpg's face box is ~267 px
    small = obama_image.resize(
        (round(obama_image.width * scale), round(obama_image.height * scale)), Image.BILINEAR
    )
    background = Image.new("RGB", canvas, (120, 120, 120))
    background.paste(small, (canvas[0] // 3, canvas[1] // 4))
    return decode_image(image_bytes(background, "JPEG", quality=92))


@pytest.mark.parametrize(
    ("canvas", "face_px", "min_face_px"),
    [((640, 480), 40, DEFAULT_MIN_FACE_PX), ((1600, 1200), 100, 150)],
)
def test_small_face_is_face_too_small(
    canvas: tuple[int, int], face_px: int, min_face_px: int, obama_image: Image.Image
) -> None:
    image = _tiny_face(obama_image, canvas, face_px)
    err = expect_error("face_too_small", lambda: encode_single_face(image, min_face_px))
    assert f"at least {min_face_px} px" in err.message
    # The same face is accepted when the minimum allows it (it was found, just small).
    _, quality = encode_single_face(image, min_face_px=face_px // 2)
    assert face_px * 0.7 <= quality.face_px <= face_px * 1.3


def test_detect_faces_maps_boxes_back_to_full_resolution() -> None:
    image = decode_image(photo("biden.jpg"))  # 970x2204: detected on a 282x640 copy
    (face,) = detect_faces(image, upsample=0)
    (full,) = detect_faces(image, max_side=4000, upsample=0)  # on the full image
    # Boxes snap to the detector's pyramid levels, so they agree only roughly across scales.
    dy = (face.box.top + face.box.bottom - full.box.top - full.box.bottom) / 2
    dx = (face.box.left + face.box.right - full.box.left - full.box.right) / 2
    assert np.hypot(dx, dy) < 0.25 * full.box.size
    assert 0.75 < face.box.size / full.box.size < 1.33


def test_wrong_array_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        detect_faces(np.zeros((10, 10), dtype=np.uint8))


def test_enrollment_refuses_a_second_face_under_the_enrollment_floor() -> None:
    """The issue's 107 px + 75 px pair: the smaller face no longer slips under the 80 px floor."""
    image = decode_image(pair_107_75())
    _, quality = encode_single_face(image, ENROLL_MIN_FACE_PX)  # the old rule enrolled it
    assert quality.face_px >= ENROLL_MIN_FACE_PX
    err = expect_error("multiple_faces", lambda: encode_enrollment_face(image))
    assert "second face" in err.message


def test_enrollment_finds_a_second_face_the_quick_look_misses() -> None:
    image = decode_image(large_with_small_rival())
    sizes = [d.box.size for d in detect_faces(image, upsample=0)]
    assert len(sizes) == 1  # the check-in look sees the subject only
    expect_error("multiple_faces", lambda: encode_enrollment_face(image))


def test_enrollment_ignores_a_background_face_and_encodes_like_a_check_in(
    obama: np.ndarray,
) -> None:
    image = decode_image(subject_with_background_face())
    encoding, quality = encode_enrollment_face(image)
    assert quality.face_px >= 200 and quality.min_face_px == ENROLL_MIN_FACE_PX
    assert verify_face(encoding, obama).verified
    # The subject is found and encoded exactly as a check-in photo's face is.
    assert np.array_equal(encoding, encode_single_face(image)[0])


@pytest.mark.parametrize("name", ENROLL.values())
def test_single_face_photos_enroll(name: str, encoded: Encoded) -> None:
    encoding, quality = encode_enrollment_face(decode_image(photo(name)))
    assert np.array_equal(encoding, encoded[name][0])
    assert quality.face_px == encoded[name][1].face_px


def test_enrollment_refuses_the_real_pair_photo() -> None:
    expect_error(
        "multiple_faces", lambda: encode_enrollment_face(decode_image(photo("two_people.jpg")))
    )
