"""Pure helpers of common.files: type decision, name sanitizing, headers, settings wiring."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFile
from pydantic import SecretStr, ValidationError
from storage_servers import minimal_pdf

from common import files
from common.scanning import ALLOWED_TYPES, UNDECODABLE_IMAGE, ImageRejected, check_image
from common.settings import Settings
from common.signing import verify

ALL = frozenset(ALLOWED_TYPES)


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    return out.getvalue()


def settings(**kw: object) -> Settings:
    return Settings(database_url="postgresql://u@localhost/x", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("head", "claimed", "expected"),
    [
        (png(), "application/pdf", "image/png"),  # magic bytes win over the claim
        (png(), None, "image/png"),
        (minimal_pdf(), "image/jpeg", "application/pdf"),
        (b"hello\n", None, "text/plain"),
        (b"hello\n", "application/octet-stream", "text/plain"),
        (b"a,b\n1,2\n", None, "text/csv"),
        (b"a,b\n1,2\n", "text/plain", "text/plain"),
        (b"hello\n", "text/csv", "text/csv"),  # the scan then checks the whole file is CSV
        (b"a;b\n1;2\n", "Text/CSV; charset=utf-8", "text/csv"),
    ],
)
def test_decide_upload_type(head, claimed, expected):
    assert files.decide_upload_type(head, complete=True, claimed=claimed, allowed=ALL) == expected


@pytest.mark.parametrize(
    ("head", "claimed", "allowed", "detected"),
    [
        (b"hello\n", "image/jpeg", ALL, "text/plain"),  # text is only text when called text
        (b"hello\n", "application/pdf", ALL, "text/plain"),
        (b"<html><script>x</script></html>", "text/plain", ALL, "text/html"),
        (b"\x00\x01\x02\x03binary", None, ALL, None),
        (png(), "image/png", frozenset({"application/pdf"}), "image/png"),
        (b"hello\n", "text/csv", frozenset({"text/plain"}), "text/plain"),
    ],
)
def test_refused_types(head, claimed, allowed, detected):
    with pytest.raises(files.TypeRefused) as info:
        files.decide_upload_type(head, complete=True, claimed=claimed, allowed=allowed)
    assert info.value.detected == detected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\me\\Desktop\\notes.txt", "notes.txt"),
        ("../../etc/passwd", "passwd"),
        ("..", "upload"),
        ("", "upload"),
        (None, "upload"),
        ("   .hidden  ", "hidden"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # right-to-left override removed
        ("tab\there\nnew", "tab here new"),
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("Cafe\u0301.txt", "Café.txt"),  # NFC
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
def test_sanitize_filename(name, expected):
    assert files.sanitize_filename(name) == expected


def test_content_disposition_is_ascii_with_exact_utf8_name():
    header = files.content_disposition('Résumé "final"; x.pdf')
    header.encode("latin-1")  # a valid header value
    assert header == (
        'attachment; filename="R_sum_ _final__ x.pdf"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%3B%20x.pdf"
    )


def test_signing_secret_is_derived_and_distinct():
    s = settings(jwt_secret=SecretStr("j" * 40))
    derived = files.signing_secret(s)
    assert derived != b"j" * 40 and len(derived) == 32
    assert files.signing_secret(settings(jwt_secret=SecretStr("k" * 40))) != derived
    explicit = settings(jwt_secret=SecretStr("j" * 40), file_signing_secret=SecretStr("f" * 40))
    assert files.signing_secret(explicit) == b"f" * 40
    url = files.api_download_url(s, "0" * 32, now=1000)
    path, query = url.split("?")
    assert path == "/v1/files/" + "0" * 32
    params = dict(p.split("=") for p in query.split("&"))
    assert params["expires"] == str(1000 + s.download_url_seconds)
    verify("0" * 32, params["expires"], params["signature"], derived, now=1001)
    based = settings(files_public_base_url="https://api.example.org/")
    assert files.api_download_url(based, "a" * 32).startswith("https://api.example.org/v1/files/")


def test_storage_settings(tmp_path: Path):
    local = files.storage_config(settings(var_dir=tmp_path))
    assert local.backend == "local" and local.local_root == tmp_path / "files"
    s3 = files.storage_config(
        settings(storage_backend="s3", s3_bucket="b", s3_region="eu-west-1", storage_prefix="up")
    )
    assert (s3.backend, s3.s3_bucket, s3.prefix, s3.region) == ("s3", "b", "up", "eu-west-1")
    with pytest.raises(ValidationError, match="S3_BUCKET"):
        settings(storage_backend="s3")


def test_allowed_types_setting(monkeypatch):
    monkeypatch.setenv("UPLOAD_ALLOWED_TYPES", "image/PNG, image/jpg,application/pdf")
    assert settings().upload_allowed_types == ["application/pdf", "image/jpeg", "image/png"]
    monkeypatch.setenv("UPLOAD_ALLOWED_TYPES", '["text/csv"]')
    assert settings().upload_allowed_types == ["text/csv"]
    for bad in ("text/html", "image/svg+xml", "application/zip"):
        monkeypatch.setenv("UPLOAD_ALLOWED_TYPES", bad)
        with pytest.raises(ValidationError, match="unsupported upload types"):
            settings()


def test_truncated_images_are_rejected_even_if_another_import_allowed_them():
    """face_recognition sets ImageFile.LOAD_TRUNCATED_IMAGES = True when imported; the worker
    that runs face tasks also runs scans, and must still reject a cut-off image."""
    out = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(out, "PNG")
    cut = out.getvalue()[: len(out.getvalue()) // 2]
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(ImageRejected) as info:
            check_image(cut)
        assert info.value.reason == UNDECODABLE_IMAGE
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored for its owner
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
