"""Test and item statistics as Moodle's quiz statistics define them: pure, no I/O.

Input is a matrix of per-question scores, one row per student's FIRST attempt (choosing those
rows is the caller's job, as in Moodle's default report), one column per question, plus each
question's maximum. Totals are the row sums, in points (not rescaled to the quiz grade).

- Standard deviation of totals: sample SD, divided by n - 1.
- Facility index: mean item score / item maximum, a FRACTION (Moodle shows it x100). Not clamped:
  under negative marking it can fall below 0. None when the item is worth 0.
- Discrimination index: Pearson correlation between the item score and the score on the REST
  of the test (total minus that item), a FRACTION in [-1, 1] (Moodle shows it x100). Using the
  rest keeps an item from correlating with itself.
Statistics that are undefined come back as None, never as an error or NaN: mean and median
with no attempts, SD and every discrimination with fewer than two, and a discrimination whose
item or rest score does not vary (e.g. everybody got it right, or a one-question test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ItemStatistics", "QuizStatistics", "quiz_statistics"]


@dataclass(frozen=True, slots=True)
class ItemStatistics:
    question_id: int
    max_points: float
    mean: float | None  # mean item score, points
    facility: float | None  # mean / max_points, a fraction
    discrimination: float | None  # r(item, rest of test), a fraction


@dataclass(frozen=True, slots=True)
class QuizStatistics:
    attempts: int
    max_score: float
    mean: float | None
    median: float | None
    sd: float | None  # sample standard deviation (n - 1)
    items: tuple[ItemStatistics, ...]  # in column order


def _constant(x: np.ndarray) -> bool:
    # With a tolerance: rest = total - item leaves float crumbs ((0.1 + 1) - 1 != 0.1), and
    # correlating crumbs would report a strong but meaningless discrimination.
    spread = float(x.max() - x.min())
    return spread <= 1e-9 * (1.0 + float(np.abs(x).max()))


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if _constant(x) or _constant(y):
        return None
    dx = x - x.mean()
    dy = y - y.mean()
    r = float(np.dot(dx, dy) / np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    return min(1.0, max(-1.0, r))


def quiz_statistics(
    question_ids: Sequence[int],
    max_points: Sequence[float],
    scores: Sequence[Sequence[float]] | np.ndarray,
) -> QuizStatistics:
    """Statistics of `scores` (rows = first attempts, columns = `question_ids`)."""
    n_items = len(question_ids)
    if len(max_points) != n_items:
        raise ValueError("question_ids and max_points differ in length")
    matrix = np.asarray(scores, dtype=float)  # ragged rows raise ValueError here
    if matrix.shape == (0,):  # no attempts at all
        matrix = matrix.reshape(0, n_items)
    if matrix.ndim != 2 or matrix.shape[1] != n_items:
        raise ValueError(f"every row of scores must have {n_items} columns")
    if not np.isfinite(matrix).all():
        raise ValueError("scores must be finite numbers")

    n = len(matrix)
    totals = matrix.sum(axis=1)
    columns = np.ascontiguousarray(matrix.T)  # strided columns are ~20x slower to scan
    items = []
    for j, (qid, top) in enumerate(zip(question_ids, max_points, strict=True)):
        column = columns[j]
        mean = float(column.mean()) if n else None
        items.append(
            ItemStatistics(
                question_id=qid,
                max_points=float(top),
                mean=mean,
                facility=mean / top if mean is not None and top > 0 else None,
                discrimination=_pearson(column, totals - column) if n >= 2 else None,
            )
        )
    return QuizStatistics(
        attempts=n,
        max_score=float(sum(max_points)),
        mean=float(totals.mean()) if n else None,
        median=float(np.median(totals)) if n else None,
        sd=(0.0 if _constant(totals) else float(totals.std(ddof=1))) if n >= 2 else None,
        items=tuple(items),
    )
