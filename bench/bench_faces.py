"""Face pipeline throughput and decisions against face_recognition's defaults, plus gallery search.

Run by hand: `.venv/bin/python bench/bench_faces.py [ROUNDS]` (default 3; ~1 min on 2 cores).

1. Enrollments/s and check-ins/s on the shared photos (../shared/faces): ours is
   decode_image + encode_single_face; the baseline is the library's documented defaults,
   load_image_file + face_locations (HOG, one upsample, full image) + face_encodings. Both run
   interleaved photo by photo in the same process; each photo's time is its median over the
   rounds (the machine is shared, medians resist the other tenants).
2. Identity decisions of both: each check-in verified or not against the Obama enrollment
   (tolerance 0.6), and the one-to-one assignment of two_people.jpg to the enrolled people.
3. Nearest-neighbour search of one encoding among 100,000 stored ones (bench/_gallery.py),
   checked against brute force: the run fails if any answer differs.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _gallery import Gallery

from common.faces import DEFAULT_TOLERANCE, assign_faces, distances, verify
from worker.face_pipeline import (
    FaceError,
    decode_image,
    encode_all_faces,
    encode_single_face,
    preload,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
    import face_recognition as fr

# The photos of tests/faces.json, where the tests read them (FACES_DIR overrides).
FACES = Path(
    os.environ.get("FACES_DIR") or Path(__file__).resolve().parents[2] / "shared" / "faces"
)
ENROLL = {
    "obama": "obama.jpg",
    "biden": "biden.jpg",
    "lin_manuel_miranda": "lin-manuel-miranda.png",
}
CHECK_INS = {  # photo -> who is really in it; each is checked against the Obama enrollment
    "obama2.jpg": "obama",
    "obama3.jpg": "obama",
    "obama_rgba.png": "obama",
    "obama_small.jpg": "obama",
    "obama-240p.jpg": "obama",
    "obama-480p.jpg": "obama",
    "obama-720p.jpg": "obama",
    "obama-1080p.jpg": "obama",
    "obama_partial_face.jpg": "obama",
    "biden.jpg": "biden",
    "lin-manuel-miranda.png": "lin_manuel_miranda",
}
GROUP = "two_people.jpg"
GALLERY_SIZE = 100_000
QUERIES = 500

Encoding = np.ndarray


def dlib_build() -> str:
    """Which dlib runs: the dlib-bin wheel (no BLAS) or `make faces-blas` (OpenBLAS)."""
    import dlib

    blas = "with BLAS (make faces-blas)" if dlib.DLIB_USE_BLAS else "without BLAS (dlib-bin)"
    return f"{dlib.__version__} {blas}"


def ours_single(data: bytes) -> Encoding | None:
    try:
        return encode_single_face(decode_image(data))[0]
    except FaceError:
        return None


def default_single(data: bytes) -> Encoding | None:
    image = fr.load_image_file(io.BytesIO(data))
    encodings = fr.face_encodings(image, fr.face_locations(image))
    return encodings[0] if len(encodings) == 1 else None


def ours_group(data: bytes) -> list[Encoding]:
    return encode_all_faces(decode_image(data))


def default_group(data: bytes) -> list[Encoding]:
    image = fr.load_image_file(io.BytesIO(data))
    boxes = sorted(fr.face_locations(image), key=lambda b: b[3])  # left to right, as ours
    return fr.face_encodings(image, boxes)


def timed(fn: Callable[[bytes], Any], data: bytes) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(data)
    return time.perf_counter() - start, result


def run_photos(photos: list[str], rounds: int) -> dict[str, dict[str, Any]]:
    """Per photo and pipeline: median seconds and the (last) result."""
    blobs = {name: (FACES / name).read_bytes() for name in photos}
    times: dict[tuple[str, str], list[float]] = {}
    out: dict[str, dict[str, Any]] = {name: {} for name in photos}
    pipelines: dict[str, tuple[Callable[[bytes], Any], Callable[[bytes], Any]]] = {
        name: (ours_group, default_group) if name == GROUP else (ours_single, default_single)
        for name in photos
    }
    for _ in range(rounds):
        for name in photos:
            for label, fn in zip(("ours", "default"), pipelines[name], strict=True):
                seconds, result = timed(fn, blobs[name])
                times.setdefault((name, label), []).append(seconds)
                out[name][label] = result
    for (name, label), samples in times.items():
        out[name][f"{label}_s"] = statistics.median(samples)
    return out


def throughput(results: dict[str, dict[str, Any]], photos: list[str], label: str) -> float:
    return len(photos) / sum(results[name][f"{label}_s"] for name in photos)


def bench_pipeline(rounds: int) -> bool:
    photos = list(dict.fromkeys([*ENROLL.values(), *CHECK_INS, GROUP]))
    res = run_photos(photos, rounds)

    print(f"\n== per photo (median of {rounds}, seconds) ==")
    print(f"{'photo':24} {'ours':>7} {'default':>8} {'speedup':>8}")
    for name in photos:
        ours_s, default_s = res[name]["ours_s"], res[name]["default_s"]
        print(f"{name:24} {ours_s:7.3f} {default_s:8.3f} {default_s / ours_s:7.1f}x")

    print("\n== throughput ==")
    for title, group in (("enrollments", list(ENROLL.values())), ("check-ins", list(CHECK_INS))):
        ours, default = throughput(res, group, "ours"), throughput(res, group, "default")
        print(f"{title:12} ours {ours:5.2f}/s  default {default:5.2f}/s  = {ours / default:.1f}x")
    ours_g, default_g = res[GROUP]["ours_s"], res[GROUP]["default_s"]
    print(f"{'class photo':12} ours {ours_g:.3f} s  default {default_g:.3f} s ({GROUP})")

    print(f"\n== decisions against the Obama enrollment (tolerance {DEFAULT_TOLERANCE}) ==")
    agree = True
    print(f"{'check-in':24} {'truth':>19} {'ours':>14} {'default':>14}  same")
    for name, truth in CHECK_INS.items():
        row = []
        for label in ("ours", "default"):
            probe, enrolled = res[name][label], res[ENROLL["obama"]][label]
            if probe is None:
                row.append((None, "rejected"))
                continue
            v = verify(probe, enrolled)
            row.append((v.verified, f"{'yes' if v.verified else 'no'} ({v.distance:.3f})"))
        same = row[0][0] == row[1][0]
        agree &= same and row[0][0] == (truth == "obama")
        print(f"{name:24} {truth:>19} {row[0][1]:>14} {row[1][1]:>14}  {same}")

    assignments = {}
    for label in ("ours", "default"):
        candidates = {i: res[f][label] for i, f in enumerate(ENROLL.values())}
        matches, unknown = assign_faces(res[GROUP][label], candidates)
        people = list(ENROLL)
        by_face = {m.face_index: (people[m.user_id], round(m.distance, 3)) for m in matches}
        assignments[label] = ([by_face.get(i, ("?", None))[0] for i in range(3)], unknown)
        print(f"{GROUP} {label:8} left to right: {sorted(by_face.items())}, unknown {unknown}")
    same_group = assignments["ours"] == assignments["default"]
    agree &= same_group
    print(f"two_people assignment identical: {same_group}")
    print(f"ALL DECISIONS AGREE: {agree}")

    for name in ENROLL.values():  # how far our encodings sit from the defaults' (same photo)
        d = float(distances(res[name]["ours"], [res[name]["default"]])[0])
        print(f"  encoding shift ours vs default, {name}: {d:.3f}")
    return agree


def bench_gallery() -> bool:
    rng = np.random.default_rng(42)
    enrolled = [ours_single((FACES / name).read_bytes()) for name in ENROLL.values()]
    check_ins = {name: ours_single((FACES / name).read_bytes()) for name in CHECK_INS}
    # Real dlib encodings have norm ~1.4 and per-dimension spread ~0.12: imitate that, and hide
    # the three real enrollments (ids 0, 1, 2) among the random rows.
    encodings = rng.normal(0.0, 0.12, size=(GALLERY_SIZE, 128))
    ids = np.arange(GALLERY_SIZE, dtype=np.int64) + 1_000
    rows = rng.choice(GALLERY_SIZE, size=len(enrolled), replace=False)
    for person_id, (row, enc) in enumerate(zip(rows, enrolled, strict=True)):
        encodings[row], ids[row] = enc, person_id
    start = time.perf_counter()
    gallery = Gallery(encodings, ids)
    build_s = time.perf_counter() - start

    real_probes = [enc for enc in check_ins.values() if enc is not None]
    probes = real_probes + list(rng.normal(0.0, 0.12, size=(QUERIES, 128)))
    for probe in probes[:20]:  # warm caches and BLAS threads
        gallery.nearest(probe)
    lat, lat_naive, disagree = [], [], 0
    for probe in probes:
        t0 = time.perf_counter()
        hit = gallery.nearest(probe)
        t1 = time.perf_counter()
        exact = np.linalg.norm(encodings - probe, axis=1)
        row = int(np.argmin(exact))
        lat_naive.append(time.perf_counter() - t1)
        lat.append(t1 - t0)
        assert hit is not None
        disagree += hit.row != row or abs(hit.distance - float(exact[row])) > 1e-5

    def pct(xs: list[float], q: int) -> float:
        return float(np.percentile(xs, q) * 1e3)

    print(f"\n== gallery: 1 probe vs {GALLERY_SIZE:,} encodings ({len(probes)} queries) ==")
    print(f"Gallery build {build_s * 1e3:.0f} ms (float32 copy + squared norms)")
    print(f"Gallery.nearest  p50 {pct(lat, 50):6.2f} ms  p95 {pct(lat, 95):6.2f} ms")
    print(f"naive float64    p50 {pct(lat_naive, 50):6.2f} ms  p95 {pct(lat_naive, 95):6.2f} ms")
    print(f"queries whose row or distance (> 1e-5) differ from the float64 answer: {disagree}")
    people = list(ENROLL)
    for name, enc in check_ins.items():
        hit = gallery.match(enc) if enc is not None else None
        who = people[hit.id] if hit is not None and hit.id < len(people) else "nobody"
        print(f"  {name:24} -> {who}" + (f" ({hit.distance:.3f})" if hit else ""))
    return disagree == 0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; rounds {rounds};")
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset: all cores)')}")
    print(f"dlib {dlib_build()}")
    preload()
    ours_single((FACES / "obama_small.jpg").read_bytes())  # warm up both paths
    default_single((FACES / "obama_small.jpg").read_bytes())
    agree = bench_pipeline(rounds)
    exact = bench_gallery()
    sys.exit(0 if agree and exact else 1)


if __name__ == "__main__":
    main()
