"""Face matching: pure numpy on 128-d face encodings, no I/O, no dlib.

The worker computes encodings (worker/face_pipeline.py); everything that compares them lives here
so the API can use it without importing dlib. Distances are Euclidean, as in face_recognition:
on the shared photos the same person lies at 0.04-0.43 and different people at 0.70 or more, and
the library's default tolerance is 0.6 (a match iff distance <= tolerance).

- `verify`: one probe against one user's enrollments (the minimum distance decides).
- `assign_faces`: the faces of a class photo against the enrolled students, one-to-one.
- `encoding_to_bytes` / `encoding_from_bytes`: 1024-byte little-endian float64 storage format.
- `choose_enrollment_face`: which face of an enrollment photo is the subject, or why none is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import inf, isfinite
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_TOLERANCE",
    "ENCODING_BYTES",
    "ENCODING_DIM",
    "Assignment",
    "EnrollmentChoice",
    "FaceMatch",
    "Verification",
    "as_encoding",
    "as_gallery",
    "assign_faces",
    "choose_enrollment_face",
    "distances",
    "encoding_from_bytes",
    "encoding_to_bytes",
    "rival_floor_px",
    "verify",
]

ENCODING_DIM = 128
ENCODING_BYTES = ENCODING_DIM * 8  # float64
DEFAULT_TOLERANCE = 0.6
_STORAGE_DTYPE = np.dtype("<f8")  # explicit byte order: the bytes outlive the machine

FloatArray = npt.NDArray[np.float64]


class FaceMatch(NamedTuple):
    face_index: int
    user_id: int
    distance: float


class Assignment(NamedTuple):
    matches: list[FaceMatch]  # sorted by distance, best first
    unknown_face_count: int


@dataclass(frozen=True, slots=True)
class Verification:
    verified: bool
    distance: float  # minimum over the enrollments; inf when there are none
    enrollment_index: int | None  # which enrollment was closest


@dataclass(frozen=True, slots=True)
class EnrollmentChoice:
    """The verdict on an enrollment photo's face sizes: `index` of the subject when `code` is
    None, else why the photo cannot be enrolled."""

    code: Literal["no_face", "face_too_small", "multiple_faces"] | None
    index: int | None
    largest_px: int
    rival_px: int | None = None  # the largest other face that counts, for multiple_faces


def rival_floor_px(subject_px: int, general_floor_px: int) -> float:
    """How large a second face must be to make an enrollment photo ambiguous: half the
    subject's size, or the size any check-in accepts (`general_floor_px`), whichever is
    smaller. Such a face could be the person who checks in; smaller ones are background."""
    return min(subject_px / 2, general_floor_px)


def choose_enrollment_face(
    sizes: Sequence[int], *, min_face_px: int, general_floor_px: int
) -> EnrollmentChoice:
    """Enrollment binds one identity: the largest face is the subject if it is at least
    `min_face_px`, and no other face reaches `rival_floor_px` of it (else `multiple_faces`).

    `sizes`: the face sizes in pixels (the shorter side of each detector box), in any order.
    """
    if not sizes:
        return EnrollmentChoice("no_face", None, 0)
    index = max(range(len(sizes)), key=lambda i: (sizes[i], -i))
    largest = sizes[index]
    if largest < min_face_px:
        return EnrollmentChoice("face_too_small", None, largest)
    floor = rival_floor_px(largest, general_floor_px)
    rivals = [s for i, s in enumerate(sizes) if i != index and s >= floor]
    if rivals:
        return EnrollmentChoice("multiple_faces", None, largest, max(rivals))
    return EnrollmentChoice(None, index, largest)


def as_encoding(encoding: npt.ArrayLike) -> FloatArray:
    """Return `encoding` as a float64 vector of 128 finite values, or raise ValueError."""
    arr = np.asarray(encoding, dtype=np.float64)
    if arr.shape != (ENCODING_DIM,):
        raise ValueError(f"a face encoding has shape ({ENCODING_DIM},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("a face encoding must be finite")
    return arr


def as_gallery(encodings: npt.ArrayLike) -> FloatArray:
    """Return encodings stacked as an (n, 128) float64 matrix; an empty input gives (0, 128)."""
    arr = np.asarray(encodings, dtype=np.float64)
    if arr.size == 0:
        return np.empty((0, ENCODING_DIM), dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2 or arr.shape[1] != ENCODING_DIM:
        raise ValueError(f"a gallery has shape (n, {ENCODING_DIM}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("face encodings must be finite")
    return arr


def encoding_to_bytes(encoding: npt.ArrayLike) -> bytes:
    return as_encoding(encoding).astype(_STORAGE_DTYPE, copy=False).tobytes()


def encoding_from_bytes(data: bytes) -> FloatArray:
    if len(data) != ENCODING_BYTES:
        raise ValueError(f"a stored face encoding has {ENCODING_BYTES} bytes, got {len(data)}")
    # frombuffer is read-only and borrows `data`; astype gives an owned native array
    return as_encoding(np.frombuffer(data, dtype=_STORAGE_DTYPE).astype(np.float64))


def _check_tolerance(tolerance: float) -> None:
    if not (isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")


def distances(encoding: npt.ArrayLike, gallery: npt.ArrayLike) -> FloatArray:
    """Euclidean distance from `encoding` to each row of `gallery` (exact, float64)."""
    diff = as_gallery(gallery) - as_encoding(encoding)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


def verify(
    encoding: npt.ArrayLike, enrollments: npt.ArrayLike, tolerance: float = DEFAULT_TOLERANCE
) -> Verification:
    """Is the probe the enrolled user? Verified iff its closest enrollment is within tolerance."""
    _check_tolerance(tolerance)
    dist = distances(encoding, enrollments)
    if dist.size == 0:
        return Verification(verified=False, distance=inf, enrollment_index=None)
    index = int(np.argmin(dist))
    distance = float(dist[index])
    return Verification(verified=distance <= tolerance, distance=distance, enrollment_index=index)


def assign_faces(
    face_encodings: Sequence[npt.ArrayLike],
    candidates: Mapping[int, npt.ArrayLike],
    tolerance: float = DEFAULT_TOLERANCE,
) -> Assignment:
    """Match the faces of a photo to candidate users, one-to-one, best distances first.

    `candidates` maps user_id to that user's enrollments ((n, 128), n >= 1; users without any are
    skipped). A face-user distance is the user's minimum over their enrollments. Pairs within
    tolerance are taken greedily in ascending distance (ties by face index, then user id, so the
    result is deterministic); a face or user already taken is skipped. Faces left unmatched are
    unknown. Greedy rather than an optimal assignment: with same-person distances far below
    different-person ones, the closest pair is the right one, and greedy never trades a confident
    match for two weaker ones.
    """
    _check_tolerance(tolerance)
    faces = as_gallery([as_encoding(face) for face in face_encodings])
    by_user = {uid: as_gallery(enc) for uid, enc in candidates.items()}
    user_ids = [uid for uid, gallery in by_user.items() if gallery.shape[0] > 0]
    if faces.shape[0] == 0 or not user_ids:
        return Assignment([], faces.shape[0])

    # One stacked matrix, then a per-user minimum over each user's slice of rows.
    galleries = [by_user[uid] for uid in user_ids]
    stacked = np.concatenate(galleries)
    starts = np.cumsum([0] + [g.shape[0] for g in galleries[:-1]])
    per_user = np.stack(
        [np.minimum.reduceat(distances(face, stacked), starts) for face in faces]
    )  # (n_faces, n_users)

    face_idx, user_idx = np.nonzero(per_user <= tolerance)
    pairs = sorted(
        zip(
            per_user[face_idx, user_idx].tolist(), face_idx.tolist(), user_idx.tolist(), strict=True
        ),
        key=lambda p: (p[0], p[1], user_ids[p[2]]),
    )
    matches: list[FaceMatch] = []
    taken_faces: set[int] = set()
    taken_users: set[int] = set()
    for distance, f, u in pairs:
        if f in taken_faces or u in taken_users:
            continue
        taken_faces.add(f)
        taken_users.add(u)
        matches.append(FaceMatch(f, user_ids[u], distance))
    return Assignment(matches, faces.shape[0] - len(matches))
