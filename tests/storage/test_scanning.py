"""Content sniffing, image checks and the verdicts of scan() (ClamAV tests: test_clamd.py)."""

from __future__ import annotations

import io
import tempfile

import pytest
from face_photos import FACES
from PIL import Image

from common.scanning import (
    ALLOWED_TYPES,
    HEAD_SIZE,
    NOT_ALLOWED,
    TOO_MANY_PIXELS,
    TYPE_MISMATCH,
    UNDECODABLE_IMAGE,
    ImageRejected,
    ScanPolicy,
    check_image,
    is_allowed,
    normalize_type,
    scan,
    sniff,
)

JPEG = (FACES / "obama.jpg").read_bytes()
PNG = (FACES / "lin-manuel-miranda.png").read_bytes()
CSV = b'student,question,answer\r\nalice,1,B\r\nbob,1,"C, then D"\r\ncarol,2,A\r\n'
TEXT = "Notes for the exam.\nNo commas here at all\n\u00e9t\u00e9 \u2713\n".encode()


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt, **save)
    return out.getvalue()


def animated_gif(frames: int) -> bytes:
    images = [Image.new("RGB", (8, 8), (i * 8 % 256, 0, 255)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:])
    return out.getvalue()


# --- sniff -------------------------------------------------------------------------------


def test_sniff_real_photos(pdf_bytes: bytes) -> None:
    assert sniff(JPEG[:HEAD_SIZE]) == "image/jpeg"
    assert sniff(PNG[:HEAD_SIZE]) == "image/png"
    assert sniff(pdf_bytes, complete=True) == "application/pdf"


@pytest.mark.parametrize(("fmt", "expected"), [("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_sniff_generated_images(fmt: str, expected: str) -> None:
    assert sniff(image_bytes(fmt)) == expected


def test_sniff_text_and_csv() -> None:
    assert sniff(TEXT, complete=True) == "text/plain"
    assert sniff(CSV, complete=True) == "text/csv"
    assert sniff(b"a;b;c\n1;2;3\n", complete=True) == "text/csv"
    assert sniff(b"a\tb\n1\t2\n", complete=True) == "text/csv"
    assert sniff(b"a,b,c\n1,2\n3\n", complete=True) == "text/plain"  # ragged: just text
    assert sniff(b"\xef\xbb\xbfname,score\nx,1\n", complete=True) == "text/csv"  # BOM


def test_sniff_head_cut_mid_character_and_mid_line() -> None:
    head = (b"a" + "\u00e9".encode() * HEAD_SIZE)[:HEAD_SIZE]
    assert head[-1] == 0xC3  # cut inside a 2-byte character
    assert sniff(head) == "text/plain"
    assert sniff(head, complete=True) is None  # as a whole file it is invalid UTF-8
    csv_head = (b"x,y\n" + b"1,2\n" * HEAD_SIZE)[: HEAD_SIZE - 2]  # last line cut: "1,"
    assert csv_head.endswith(b"\n1,")
    assert sniff(csv_head) == "text/csv"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02\x03binary",
        b"PK\x03\x04\x14\x00\x00\x00",  # zip / docx
        b"MZ\x90\x00\x03\x00\x00\x00",  # windows executable
        b"\x7fELF\x02\x01\x01\x00",
        b"text then a NUL\x00",
        b"\xff\xfe\x00\x00",
        b"latin-1 caf\xe9\n",
    ],
)
def test_sniff_unrecognised(data: bytes) -> None:
    assert sniff(data, complete=True) is None


def test_sniff_names_markup_so_it_can_be_refused() -> None:
    assert sniff(b"  <svg xmlns='http://www.w3.org/2000/svg'></svg>", complete=True) == (
        "image/svg+xml"
    )
    assert sniff(b"<!DOCTYPE html><html><script>x</script>", complete=True) == "text/html"
    assert sniff(b"a < b, but this is prose\n", complete=True) == "text/plain"


def test_normalize_and_allowlist() -> None:
    assert normalize_type("Image/JPG; q=1") == "image/jpeg"
    assert normalize_type("application/octet-stream") is None
    assert normalize_type("") is None
    assert normalize_type("application/vnd.ms-excel") == "text/csv"
    assert is_allowed("image/png")
    assert is_allowed("text/csv; charset=utf-8")
    assert not is_allowed("text/html")
    assert not is_allowed(None)
    assert {"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"} < ALLOWED_TYPES


# --- check_image -------------------------------------------------------------------------


def test_check_image_accepts_real_photos() -> None:
    info = check_image(JPEG)
    assert (info.format, info.frames) == ("JPEG", 1)
    assert info.width * info.height > 100_000
    with open(FACES / "lin-manuel-miranda.png", "rb") as f:
        assert check_image(f, formats=["PNG"]).format == "PNG"


def test_check_image_pixel_limit() -> None:
    with pytest.raises(ImageRejected) as info:
        check_image(JPEG, max_pixels=10_000)
    assert info.value.reason == TOO_MANY_PIXELS


def test_decompression_bomb_refused_without_decoding() -> None:
    # 20000 x 20000 one-bit PNG: 400 Mpx (Pillow's own hard limit is ~179 Mpx), a few hundred kB.
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, "PNG")
    bomb = out.getvalue()
    assert len(bomb) < 1_000_000
    for limit in (40_000_000, 10**12):  # ours, and Pillow's backstop when ours is generous
        with pytest.raises(ImageRejected) as info:
            check_image(bomb, max_pixels=limit)
        assert info.value.reason == TOO_MANY_PIXELS


def test_truncated_and_corrupt_images_are_undecodable() -> None:
    for data in (JPEG[: len(JPEG) // 2], PNG[:2000], b"\x89PNG\r\n\x1a\n" + b"\x00" * 100):
        with pytest.raises(ImageRejected) as info:
            check_image(data)
        assert info.value.reason == UNDECODABLE_IMAGE


def test_decoder_pinned_to_sniffed_format() -> None:
    with pytest.raises(ImageRejected) as info:
        check_image(PNG, formats=["JPEG"])
    assert info.value.reason == UNDECODABLE_IMAGE


def test_frame_limit() -> None:
    assert check_image(animated_gif(5)).frames == 5
    with pytest.raises(ImageRejected) as info:
        check_image(animated_gif(30), max_frames=10)
    assert info.value.reason == TOO_MANY_PIXELS


# --- scan verdicts (no clamd) ------------------------------------------------------------


def verdict(data: bytes, declared: str | None, **policy: object):
    return scan(data, declared_type=declared, clamd=None, policy=ScanPolicy(**policy))  # type: ignore[arg-type]


def test_png_declared_as_pdf_is_a_type_mismatch() -> None:
    v = verdict(PNG, "application/pdf")
    assert (v.status, v.reason, v.content_type) == ("rejected", TYPE_MISMATCH, "image/png")


def test_text_declared_as_jpeg_is_a_type_mismatch() -> None:
    v = verdict(TEXT, "image/jpeg")
    assert (v.status, v.reason, v.content_type) == ("rejected", TYPE_MISMATCH, "text/plain")


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (JPEG, "image/jpeg", "image/jpeg"),
        (JPEG, "image/jpg", "image/jpeg"),
        (PNG, "image/png", "image/png"),
        (PNG, None, "image/png"),
        (PNG, "application/octet-stream", "image/png"),
        (CSV, "text/csv", "text/csv"),
        (CSV, "text/plain", "text/plain"),  # CSV is text
        (CSV, None, "text/csv"),
        (TEXT, "text/plain", "text/plain"),
        (b"one column\nrow two\n", "text/csv", "text/csv"),  # consistent, if only one column
    ],
)
def test_clean_verdicts(data: bytes, declared: str | None, expected: str) -> None:
    v = verdict(data, declared)
    assert (v.status, v.reason, v.content_type) == ("clean", None, expected)
    assert v.clean


def test_clean_pdf(pdf_bytes: bytes) -> None:
    assert verdict(pdf_bytes, "application/pdf").clean


def test_not_allowed() -> None:
    assert verdict(b"PK\x03\x04zipzipzip", "application/zip").reason == NOT_ALLOWED
    assert verdict(b"<html><script>alert(1)</script>", "text/plain").reason == NOT_ALLOWED
    assert verdict(b"", "text/plain").reason == NOT_ALLOWED
    only_images = frozenset({"image/png", "image/jpeg"})
    v = verdict(TEXT, "text/plain", allowed_types=only_images)
    assert (v.reason, v.content_type) == (NOT_ALLOWED, "text/plain")


def test_binary_tail_behind_a_text_head_is_caught() -> None:
    data = b"innocent text\n" * (HEAD_SIZE // 10) + b"\x00\x01MZ payload"
    assert sniff(data[:HEAD_SIZE]) == "text/plain"
    v = verdict(data, "text/plain")
    assert (v.status, v.reason) == ("rejected", TYPE_MISMATCH)
    bad_utf8 = b"ok\n" * HEAD_SIZE + b"\xff\xfe"
    assert verdict(bad_utf8, "text/plain").reason == TYPE_MISMATCH


def test_csv_claim_checked_over_whole_file() -> None:
    data = b"a,b\n" + b"1,2\n" * (HEAD_SIZE // 4) + b"1,2,3\n"
    assert sniff(data[:HEAD_SIZE]) == "text/csv"
    v = verdict(data, "text/csv")
    assert (v.reason, v.content_type) == (TYPE_MISMATCH, "text/csv")
    undeclared = verdict(data, None)  # no claim made: it is still acceptable text
    assert (undeclared.status, undeclared.content_type) == ("clean", "text/plain")
    assert verdict(b"a,b\n1,2,3\n", "text/csv").reason == TYPE_MISMATCH
    assert verdict(b"a;b\n1;2\n", "text/csv").clean


def test_image_verdicts() -> None:
    v = verdict(JPEG, "image/jpeg", max_pixels=1000)
    assert (v.status, v.reason) == ("rejected", TOO_MANY_PIXELS)
    v = verdict(JPEG[:5000], "image/jpeg")
    assert (v.status, v.reason) == ("rejected", UNDECODABLE_IMAGE)
    assert verdict(image_bytes("WEBP"), "image/webp").clean
    assert verdict(animated_gif(3), "image/gif").clean


def test_scan_takes_a_seekable_file_and_leaves_it_open() -> None:
    with tempfile.SpooledTemporaryFile(max_size=1024) as f:
        f.write(CSV)
        assert scan(f, declared_type="text/csv", clamd=None).clean
        assert not f.closed
        f.seek(0)
        assert f.read() == CSV
