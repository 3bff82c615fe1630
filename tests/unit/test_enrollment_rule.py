"""common.faces.choose_enrollment_face: an enrollment photo binds one identity."""

from __future__ import annotations

import pytest

from common.faces import EnrollmentChoice, choose_enrollment_face, rival_floor_px

ENROLL, GENERAL = 80, 50


def choose(*sizes: int) -> EnrollmentChoice:
    return choose_enrollment_face(sizes, min_face_px=ENROLL, general_floor_px=GENERAL)


def test_the_rival_floor_is_half_the_subject_or_the_general_floor_whichever_is_smaller():
    assert rival_floor_px(107, GENERAL) == 50
    assert rival_floor_px(90, GENERAL) == 45
    assert rival_floor_px(400, GENERAL) == 50


@pytest.mark.parametrize(
    ("sizes", "rival"),
    [
        ((107, 75), 75),  # the pair: the second face is below the enrollment floor
        ((75, 107), 75),  # order does not matter
        ((90, 45), 45),  # exactly half of a small subject
        ((400, 50), 50),  # the general floor, far below half of a large subject
        ((200, 190, 30), 190),  # the largest rival is reported
        ((120, 120), 120),  # two equal faces
    ],
)
def test_a_second_face_at_the_floor_makes_the_photo_ambiguous(sizes, rival):
    choice = choose(*sizes)
    assert choice.code == "multiple_faces" and choice.index is None
    assert choice.largest_px == max(sizes) and choice.rival_px == rival


@pytest.mark.parametrize(
    ("sizes", "index"),
    [
        ((107,), 0),
        ((30, 260), 1),  # a background face much smaller than the subject
        ((400, 49, 20), 0),  # under the general floor
        ((90, 44), 0),  # under half of a small subject
    ],
)
def test_background_faces_are_ignored(sizes, index):
    choice = choose(*sizes)
    assert choice.code is None and choice.index == index and choice.rival_px is None


def test_no_face_and_too_small():
    assert choose().code == "no_face"
    choice = choose(79, 60)
    assert choice.code == "face_too_small" and choice.largest_px == 79
