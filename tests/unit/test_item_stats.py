"""Quiz and item statistics, against figures computed by hand (arithmetic in comments)."""

from __future__ import annotations

from math import sqrt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.item_stats import ItemStatistics, quiz_statistics

# 4 first attempts x 3 questions, maxima 1, 2, 1 (test max 4):
#          Q1  Q2  Q3 | total
#   S1      1   2   1 |   4
#   S2      1   1   0 |   2
#   S3      0   2   1 |   3
#   S4      0   0   0 |   0
SCORES = [[1, 2, 1], [1, 1, 0], [0, 2, 1], [0, 0, 0]]
IDS = [101, 102, 103]
MAXES = [1.0, 2.0, 1.0]


def test_hand_computed_matrix() -> None:
    s = quiz_statistics(IDS, MAXES, SCORES)
    assert s.attempts == 4
    assert s.max_score == 4.0
    # mean = (4 + 2 + 3 + 0) / 4 = 2.25; median of 0, 2, 3, 4 = (2 + 3) / 2 = 2.5
    assert s.mean == 2.25
    assert s.median == 2.5
    # deviations 1.75, -0.25, 0.75, -2.25; squares 3.0625 + 0.0625 + 0.5625 + 5.0625 = 8.75;
    # sample SD = sqrt(8.75 / 3) = sqrt(2.916667) = 1.707825
    assert s.sd == pytest.approx(sqrt(8.75 / 3))
    assert s.sd == pytest.approx(1.707825, abs=1e-6)

    q1, q2, q3 = s.items
    # Q1: item 1,1,0,0 (mean 0.5, facility 0.5/1); rest = total - item = 3,1,3,0 (mean 1.75).
    #   dx = .5,.5,-.5,-.5; dy = 1.25,-.75,1.25,-1.75
    #   sum dx*dy = .625 - .375 - .625 + .875 = 0.5; sum dx^2 = 1; sum dy^2 = 6.75
    #   r = 0.5 / sqrt(1 * 6.75) = 0.192450
    assert (q1.question_id, q1.max_points, q1.mean, q1.facility) == (101, 1.0, 0.5, 0.5)
    assert q1.discrimination == pytest.approx(0.5 / sqrt(6.75))
    assert q1.discrimination == pytest.approx(0.192450, abs=1e-6)
    # Q2: item 2,1,2,0 (mean 1.25, facility 1.25/2 = 0.625); rest 2,1,1,0 (mean 1).
    #   dx = .75,-.25,.75,-1.25; dy = 1,0,0,-1
    #   sum dx*dy = .75 + 1.25 = 2; sum dx^2 = .5625+.0625+.5625+1.5625 = 2.75; sum dy^2 = 2
    #   r = 2 / sqrt(5.5) = 0.852803
    assert (q2.mean, q2.facility) == (1.25, 0.625)
    assert q2.discrimination == pytest.approx(0.852803, abs=1e-6)
    # Q3: item 1,0,1,0 (mean 0.5, facility 0.5); rest 3,2,2,0 (mean 1.75).
    #   dx = .5,-.5,.5,-.5; dy = 1.25,.25,.25,-1.75
    #   sum dx*dy = .625 - .125 + .125 + .875 = 1.5; sum dx^2 = 1; sum dy^2 = 4.75
    #   r = 1.5 / sqrt(4.75) = 0.688247
    assert (q3.mean, q3.facility) == (0.5, 0.5)
    assert q3.discrimination == pytest.approx(0.688247, abs=1e-6)


def test_accepts_a_numpy_matrix() -> None:
    assert quiz_statistics(IDS, MAXES, np.array(SCORES)) == quiz_statistics(IDS, MAXES, SCORES)


def test_zero_variance_gives_no_discrimination() -> None:
    # Everybody got Q1 (0.1 each): no correlation.
    s = quiz_statistics([1, 2], [0.1, 1.0], [[0.1, 1], [0.1, 0], [0.1, 1]])
    assert s.items[0].discrimination is None
    assert s.items[0].facility == pytest.approx(1.0)
    # Q2 varies, but its rest (Q1) does not, even though in floats the rest comes out as
    # (0.1 + 1) - 1 = 0.10000000000000009 against (0.1 + 0) - 0 = 0.1.
    assert s.items[1].discrimination is None


def test_one_question_test_has_no_discrimination() -> None:
    # The rest of a one-question test is always 0.
    s = quiz_statistics([1], [1.0], [[1], [0], [1]])
    assert s.items[0].discrimination is None
    assert s.items[0].facility == pytest.approx(2 / 3)


def test_single_attempt() -> None:
    s = quiz_statistics(IDS, MAXES, [[1, 2, 0]])
    assert (s.attempts, s.mean, s.median, s.sd) == (1, 3.0, 3.0, None)
    assert [i.discrimination for i in s.items] == [None, None, None]
    assert [i.facility for i in s.items] == [1.0, 1.0, 0.0]


def test_no_attempts() -> None:
    s = quiz_statistics(IDS, MAXES, [])
    assert (s.attempts, s.mean, s.median, s.sd, s.max_score) == (0, None, None, None, 4.0)
    assert s.items[0] == ItemStatistics(101, 1.0, None, None, None)


def test_zero_point_question_has_no_facility() -> None:
    s = quiz_statistics([1, 2], [0.0, 1.0], [[0, 1], [0, 0]])
    assert s.items[0].facility is None
    assert s.items[0].mean == 0.0


def test_negative_marking_can_push_facility_below_zero() -> None:
    # Item scores -0.25, -0.25, 1 of max 1: mean = 0.5 / 3 = 0.1667; -0.25 twice -> -0.5 / 2.
    s = quiz_statistics([1, 2], [1.0, 1.0], [[-0.25, 1], [-0.25, 0]])
    assert s.items[0].facility == -0.25
    s = quiz_statistics([1, 2], [1.0, 1.0], [[-0.25, 1], [-0.25, 0], [1, 1]])
    assert s.items[0].facility == pytest.approx(0.5 / 3)


def test_perfectly_discriminating_items() -> None:
    # Q1 = Q2 = Q3 and Q4 = 1 - Q1. Rest of Q1 = Q2 + Q3 + Q4 = Q1 + 1: r = 1.
    # Rest of Q4 = 3 * Q1 = 3 * (1 - Q4): r = -1.
    rows = [[1, 1, 1, 0], [0, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 1]]
    s = quiz_statistics([1, 2, 3, 4], [1, 1, 1, 1], rows)
    assert s.items[0].discrimination == pytest.approx(1.0)
    assert s.items[3].discrimination == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("ids", "maxes", "scores"),
    [
        ([1, 2], [1.0], [[1, 1]]),  # ids and maxima disagree
        ([1, 2], [1.0, 1.0], [[1, 1, 1]]),  # too many columns
        ([1, 2], [1.0, 1.0], [[1, 1], [1]]),  # ragged
        ([1, 2], [1.0, 1.0], [1, 1]),  # not a matrix
        ([1, 2], [1.0, 1.0], [[1, float("nan")]]),
    ],
)
def test_bad_input_is_refused(ids: list[int], maxes: list[float], scores: object) -> None:
    with pytest.raises(ValueError):
        quiz_statistics(ids, maxes, scores)  # type: ignore[arg-type]


@given(
    st.integers(2, 30).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=3, max_size=3),
            min_size=n,
            max_size=n,
        )
    )
)
def test_discrimination_matches_numpy_corrcoef(rows: list[list[float]]) -> None:
    s = quiz_statistics([1, 2, 3], [2.0, 2.0, 2.0], rows)
    m = np.array(rows)
    for j, item in enumerate(s.items):
        rest = m.sum(axis=1) - m[:, j]
        if m[:, j].min() == m[:, j].max() or rest.min() == rest.max():
            assert item.discrimination is None
        else:
            assert item.discrimination is not None
            assert item.discrimination == pytest.approx(np.corrcoef(m[:, j], rest)[0, 1])
            assert -1 <= item.discrimination <= 1
    assert s.sd == pytest.approx(np.std(m.sum(axis=1), ddof=1))
