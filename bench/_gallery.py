"""A nearest-neighbour search over many face encodings, for bench/bench_faces.py to measure.

Not product code: the product verifies a probe against one user's enrollments and matches the
faces of a class photo against one class (common.faces.verify, assign_faces). This measures
what one-to-many identification over a whole institution would cost, should it be wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from common.faces import DEFAULT_TOLERANCE, as_encoding, as_gallery


class GalleryHit(NamedTuple):
    row: int
    id: int
    distance: float


class Gallery:
    """Nearest neighbour over many stored encodings (e.g. every enrollment of an institution).

    `|a-b|^2 = |a|^2 + |b|^2 - 2ab` turns the search into one matrix-vector product plus
    precomputed row norms (|a|^2 is constant for the argmin). float32 halves the memory read per
    query (51 MB for 100,000 rows: the search is bandwidth-bound), and the matrix is stored
    transposed, (128, n), because BLAS runs `q @ M.T` as long contiguous axpys, ~2x faster than
    100,000 dot products of length 128. The winner's distance is recomputed directly from its
    row, so thresholding does not suffer the expansion's cancellation error (a float32 row
    differs from its float64 original by ~1e-7). Multi-threaded BLAS helps little here and hurts
    under load: run workers with OPENBLAS_NUM_THREADS=1 (bench/bench_faces.py).
    """

    __slots__ = ("_ids", "_sq_norms", "_transposed")

    def __init__(self, encodings: npt.ArrayLike, ids: Sequence[int] | npt.ArrayLike) -> None:
        matrix = as_gallery(encodings).astype(np.float32)
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if id_arr.shape[0] != matrix.shape[0]:
            raise ValueError(f"{matrix.shape[0]} encodings but {id_arr.shape[0]} ids")
        self._transposed = np.ascontiguousarray(matrix.T)
        self._sq_norms = np.einsum("ij,ij->i", matrix, matrix)
        self._ids = id_arr

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def nearest(self, encoding: npt.ArrayLike) -> GalleryHit | None:
        """The closest row, whatever its distance; None for an empty gallery."""
        query = as_encoding(encoding)
        if len(self) == 0:
            return None
        scores = query.astype(np.float32) @ self._transposed
        scores *= -2.0
        scores += self._sq_norms
        row = int(np.argmin(scores))
        diff = self._transposed[:, row].astype(np.float64) - query
        return GalleryHit(row, int(self._ids[row]), float(np.sqrt(diff @ diff)))

    def match(
        self, encoding: npt.ArrayLike, tolerance: float = DEFAULT_TOLERANCE
    ) -> GalleryHit | None:
        """The closest row if it lies within `tolerance`, else None."""
        hit = self.nearest(encoding)
        return hit if hit is not None and hit.distance <= tolerance else None
