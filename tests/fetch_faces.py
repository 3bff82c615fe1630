"""Copy the test photos out of a face_recognition checkout, as tests/faces.json lists them.

    git clone --depth 1 https://github.com/ageitgey/face_recognition /tmp/fr
    python3 tests/fetch_faces.py /tmp/fr ../shared/faces

Every photo is checked against its sha256 (a changed upstream file fails here, not as an odd
distance in a face test); the project's licence is copied beside them. Standard library only:
CI runs it before `make install`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

MANIFEST = Path(__file__).resolve().parent / "faces.json"


def fetch(checkout: Path, dest: Path) -> list[str]:
    """Copy each listed photo to `dest`; return the problems (an empty list when all is well)."""
    manifest = json.loads(MANIFEST.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, entry in manifest["images"].items():
        source = checkout / entry["source"]
        if not source.is_file():
            problems.append(f"{source}: missing")
            continue
        data = source.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{source}: not the photo tests/faces.json describes (sha256)")
            continue
        (dest / name).write_bytes(data)
    shutil.copyfile(checkout / manifest["license"], dest / "LICENSE.face_recognition_examples")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = fetch(Path(argv[0]), Path(argv[1]))
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
