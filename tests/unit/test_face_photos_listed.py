"""The face photos come from a clone plus what CI fetches: tests/faces.json lists every photo a
test or bench reads, with its upstream path and sha256, and tests/fetch_faces.py copies exactly
those (checked) out of a face_recognition checkout."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from face_photos import FACES, MANIFEST, require_face_photos
from fetch_faces import fetch
from helpers import ROOT


def _photos_read(path: Path) -> set[str]:
    """Names in `FACES / "x.jpg"`, `photo("x.jpg")` and module-level CONSTANTS of photo names."""
    names: set[str] = set()

    def photo_names(node: ast.AST) -> set[str]:
        return {
            n.value
            for n in ast.walk(node)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and n.value.endswith((".jpg", ".png"))
        }

    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if isinstance(node.left, ast.Name) and node.left.id == "FACES":
                names |= photo_names(node.right)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "photo":
            names |= photo_names(node)
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        if any(isinstance(t, ast.Name) and t.id.lstrip("_").isupper() for t in targets):
            names |= photo_names(stmt)
    return names


def test_every_photo_read_by_tests_and_benches_is_listed() -> None:
    read = {
        name: str(path.relative_to(ROOT))
        for folder in ("tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        for name in _photos_read(path)
    }
    assert "obama_rgba.png" in read and "obama-1080p.jpg" in read  # the scan finds them
    unlisted = {name: where for name, where in read.items() if name not in MANIFEST["images"]}
    assert unlisted == {}


def test_fetch_copies_the_listed_photos_and_refuses_changed_ones(tmp_path: Path) -> None:
    require_face_photos()
    checkout = tmp_path / "face_recognition"
    for name, entry in MANIFEST["images"].items():  # a checkout with upstream's layout
        (checkout / entry["source"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FACES / name, checkout / entry["source"])
    (checkout / MANIFEST["license"]).write_text("MIT License\n")

    assert fetch(checkout, tmp_path / "faces") == []
    for name in MANIFEST["images"]:
        assert (tmp_path / "faces" / name).read_bytes() == (FACES / name).read_bytes()
    assert (tmp_path / "faces" / "LICENSE.face_recognition_examples").is_file()

    changed = checkout / MANIFEST["images"]["obama_rgba.png"]["source"]
    changed.write_bytes(changed.read_bytes()[:-1])
    (checkout / MANIFEST["images"]["two_people.jpg"]["source"]).unlink()
    problems = fetch(checkout, tmp_path / "again")
    assert len(problems) == 2 and "32bit.png" in problems[0] + problems[1]
    assert not (tmp_path / "again" / "obama_rgba.png").exists()


def test_each_listed_photo_names_as_many_people_as_it_has_faces() -> None:
    for name, entry in MANIFEST["images"].items():
        assert entry["faces"] == len(entry["people"]), name
