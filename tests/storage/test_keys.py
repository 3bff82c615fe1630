"""Keys can never escape the storage root (local) or the configured prefix (S3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.storage import InvalidKey, LocalStorage, StorageConfig, new_key, validate_key

BAD_KEYS = [
    "",
    ".",
    "..",
    "../x",
    "../../etc/passwd",
    "a/../b",
    "a/../../x",
    "%2e%2e%2f",
    "%2e%2e/x",
    "..%2fx",
    "a%2fb",
    "/etc/passwd",
    "/x",
    "a\\b",
    "..\\x",
    "C:\\x",
    "a\x00b",
    "x\x00",
    "a\nb",
    "a b",
    "a/",
    "a//b",
    "a/b/c",  # one prefix level only
    ".hidden",
    ".tmp-abc.part",  # the temp-file namespace
    "-rf",
    "x" * 129,
    "caf\u00e9",
    "\uff0e\uff0e/x",  # fullwidth dots
]
GOOD_KEYS = ["a", "A1", "report.pdf", "uploads/abc-DEF_1.2", "x" * 128, "p/" + "y" * 128]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_rejected(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_accepted(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("prefix", ["..", "../x", "/abs", "a b"])
def test_new_key_refuses_bad_prefix(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        new_key(prefix)


@pytest.mark.parametrize("prefix", ["../up", "a//b", "a\\b", "x/../y", "%2e%2e", "/.."])
def test_config_refuses_bad_prefix(prefix: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StorageConfig(backend="local", local_root=tmp_path, prefix=prefix)


def test_config_prefix_slashes_are_trimmed(tmp_path: Path) -> None:
    config = StorageConfig(backend="local", local_root=tmp_path, prefix="/abs/")
    LocalStorage(tmp_path, prefix=config.prefix).write("k", [b"1"])
    assert (tmp_path / "abs" / "k").read_bytes() == b"1"


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(path.rglob("*"))
    }


def test_every_operation_refuses_bad_keys_on_both_backends(backend) -> None:
    storage = backend.storage
    before = backend.leftovers()
    for key in BAD_KEYS:
        for op in (
            lambda k: storage.write(k, [b"pwned"]),
            storage.read,
            storage.exists,
            storage.delete,
            storage.signed_url,
        ):
            with pytest.raises(InvalidKey):
                op(key)
    assert backend.leftovers() == before


def test_nothing_outside_root_is_written_or_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"top secret")
    (tmp_path / "passwd").write_bytes(b"root:x:0:0")
    root = tmp_path / "store"
    store = LocalStorage(root)
    # Symlinks planted inside the root (by a bug elsewhere, or an operator) are not followed out.
    os.symlink(outside / "secret", root / "link")
    os.symlink(outside, root / "dirlink")
    before = snapshot(tmp_path)

    for key in [*BAD_KEYS, "link", "dirlink/secret", "dirlink/new"]:
        with pytest.raises(InvalidKey):
            store.write(key, [b"pwned"])
        with pytest.raises(InvalidKey):
            b"".join(store.read(key))
        with pytest.raises(InvalidKey):
            store.delete(key)

    assert snapshot(tmp_path) == before
    assert (outside / "secret").read_bytes() == b"top secret"


def test_prefix_keeps_tenants_apart(tmp_path: Path) -> None:
    a = LocalStorage(tmp_path, prefix="a")
    b = LocalStorage(tmp_path, prefix="b")
    a.write("k", [b"from a"])
    assert not b.exists("k")
    assert (tmp_path / "a" / "k").read_bytes() == b"from a"
