"""common.faces on synthetic vectors: distances, verification, one-to-one assignment."""

from __future__ import annotations

import struct
import subprocess
import sys
from math import inf

import numpy as np
import pytest

from common.faces import (
    ENCODING_BYTES,
    ENCODING_DIM,
    FaceMatch,
    assign_faces,
    distances,
    encoding_from_bytes,
    encoding_to_bytes,
    verify,
)


def at(x: float, axis: int = 0) -> np.ndarray:
    """A 128-d vector at `x` on one axis: distances between such points are |x - y|."""
    v = np.zeros(ENCODING_DIM)
    v[axis] = x
    return v


def test_common_faces_does_not_import_dlib() -> None:
    # The API imports common: dlib and its models must stay out of the web process.
    code = (
        "import sys, common.faces; "
        "assert not {'dlib', 'face_recognition'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_bytes_round_trip_is_exact_and_little_endian() -> None:
    enc = np.random.default_rng(1).normal(0, 0.1, ENCODING_DIM)
    data = encoding_to_bytes(enc)
    assert len(data) == ENCODING_BYTES == 1024
    assert data[:8] == struct.pack("<d", enc[0])
    back = encoding_from_bytes(data)
    assert back.dtype == np.float64
    assert np.array_equal(back, enc)
    back[0] = 5.0  # an owned, writable copy, not a view of the bytes
    assert encoding_from_bytes(data)[0] == enc[0]


@pytest.mark.parametrize("bad", [b"", b"\x00" * 1023, b"\x00" * 1025, b"\x00" * 512])
def test_bytes_of_wrong_length_are_refused(bad: bytes) -> None:
    with pytest.raises(ValueError, match="1024 bytes"):
        encoding_from_bytes(bad)


@pytest.mark.parametrize(
    "bad", [np.zeros(127), np.zeros((1, 128)), np.full(128, np.nan), at(np.inf)]
)
def test_malformed_encodings_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="encoding"):
        encoding_to_bytes(bad)


def test_distances_hand_checked() -> None:
    probe = at(0.0)
    gallery = np.stack([at(0.3), at(-0.5), at(3.0) + at(4.0, axis=1)])
    assert distances(probe, gallery) == pytest.approx([0.3, 0.5, 5.0])
    assert distances(probe, np.empty((0, 128))).shape == (0,)


def test_verify_uses_the_closest_enrollment_and_is_inclusive() -> None:
    enrollments = np.stack([at(0.9), at(0.5), at(2.0)])
    result = verify(at(0.0), enrollments, tolerance=0.5)  # 0.5 is exact in binary
    assert (result.verified, result.distance, result.enrollment_index) == (True, 0.5, 1)
    result = verify(at(0.0), enrollments, tolerance=0.49)
    assert (result.verified, result.enrollment_index) == (False, 1)
    empty = verify(at(0.0), np.empty((0, 128)))
    assert (empty.verified, empty.distance, empty.enrollment_index) == (False, inf, None)
    for tolerance in (0.0, -1.0, inf, float("nan")):
        with pytest.raises(ValueError, match="tolerance"):
            verify(at(0.0), enrollments, tolerance)


def test_assign_faces_hand_checked() -> None:
    # On one axis: faces at 0.0, 0.45, 3.0, 10.0; user 7 at 0.2, user 8 at -0.3 and 3.5,
    # user 9 at 20 and 10.1 (two enrollments: the closer one counts), user 10 has none.
    faces = [at(0.0), at(0.45), at(3.0), at(10.0)]
    candidates = {
        7: np.stack([at(0.2)]),
        8: np.stack([at(-0.3), at(3.5)]),
        9: np.stack([at(20.0), at(10.1)]),
        10: np.empty((0, 128)),
    }
    matches, unknown = assign_faces(faces, candidates, tolerance=0.6)
    # Pairs within 0.6 by distance: (3,9) 0.1, (0,7) 0.2, (1,7) 0.25, (0,8) 0.3, (2,8) 0.5.
    # Face 1 loses user 7 to face 0; face 0 is then taken, so user 8 goes to face 2. Face 1
    # has nobody else within tolerance (user 8 is 0.75 away): unknown.
    assert [(m.face_index, m.user_id) for m in matches] == [(3, 9), (0, 7), (2, 8)]
    assert [m.distance for m in matches] == pytest.approx([0.1, 0.2, 0.5])
    assert unknown == 1
    assert isinstance(matches[0], FaceMatch)


def test_assign_faces_is_greedy_not_sum_optimal() -> None:
    # Face 0 is 0.2 from user 1 and 0.3 from user 2; face 1 is 0.25 from user 1 only. Greedy
    # keeps the most confident pair (0 -> 1) and leaves face 1 unknown, rather than pairing
    # 0 -> 2, 1 -> 1 for a smaller total distance.
    result = assign_faces([at(0.0), at(0.45)], {1: at(0.2), 2: at(-0.3)}, tolerance=0.6)
    assert [(m.face_index, m.user_id) for m in result.matches] == [(0, 1)]
    assert result.unknown_face_count == 1


def test_assign_faces_edge_cases() -> None:
    assert assign_faces([], {1: at(0.0)}) == ([], 0)
    assert assign_faces([at(0.0), at(1.0)], {}) == ([], 2)
    assert assign_faces([at(0.0)], {1: at(5.0)}) == ([], 1)
    # Exact ties resolve by face index, then user id: deterministic across runs.
    tied = assign_faces([at(0.0), at(0.0)], {5: at(0.25), 3: at(-0.25)}, tolerance=0.6)
    assert [(m.face_index, m.user_id) for m in tied.matches] == [(0, 3), (1, 5)]


def test_assign_faces_property_one_to_one_and_maximal() -> None:
    rng = np.random.default_rng(7)
    tolerance = 0.6
    for _ in range(30):
        n_users, n_faces = int(rng.integers(1, 25)), int(rng.integers(1, 25))
        centres = rng.normal(0, 0.12, (n_users, ENCODING_DIM))
        candidates = {
            1000 + u: centres[u] + rng.normal(0, 0.02, (int(rng.integers(1, 4)), ENCODING_DIM))
            for u in range(n_users)
        }
        # Faces near random users (some repeated: two faces of one person), plus strangers.
        faces = [
            centres[rng.integers(n_users)] + rng.normal(0, 0.02, ENCODING_DIM)
            if rng.random() < 0.7
            else rng.normal(0, 0.12, ENCODING_DIM)
            for _ in range(n_faces)
        ]
        matches, unknown = assign_faces(faces, candidates, tolerance)

        face_ids = [m.face_index for m in matches]
        user_ids = [m.user_id for m in matches]
        assert len(set(face_ids)) == len(face_ids)
        assert len(set(user_ids)) == len(user_ids)
        assert unknown == n_faces - len(matches)
        dist = {
            (f, u): float(distances(faces[f], enc).min())
            for f in range(n_faces)
            for u, enc in candidates.items()
        }
        for m in matches:
            assert m.distance == pytest.approx(dist[m.face_index, m.user_id])
            assert m.distance <= tolerance
        assert [m.distance for m in matches] == sorted(m.distance for m in matches)
        # Maximal: no free face and free user are left within tolerance of each other.
        free_faces = set(range(n_faces)) - set(face_ids)
        free_users = set(candidates) - set(user_ids)
        assert all(dist[f, u] > tolerance for f in free_faces for u in free_users)
