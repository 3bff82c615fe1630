"""Tests (exams) as the API reads and writes them.

Owners and admins get the whole test with its key (`is_correct`); everyone else gets
`ExamTakerOut`, which has no field that could carry key material.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.common import StrictModel

MAX_ID = 2_147_483_647
MAX_QUESTIONS = 300
MAX_OPTIONS = 20
MAX_QUESTION_TEXT = 5_000
MAX_OPTION_TEXT = 1_000
MAX_POINTS = 1_000.0
MAX_CLASSES = 100
MAX_TIME_LIMIT = 7 * 24 * 3600

SchemeName = Literal["all_or_nothing", "partial", "negative"]
ReviewPolicy = Literal["never", "after_submit", "after_close"]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]
Points = Annotated[float, Field(ge=0, le=MAX_POINTS, allow_inf_nan=False)]
NegativeFraction = Annotated[
    float,
    Field(ge=0, le=1, allow_inf_nan=False, description="Share of the points a wrong answer loses"),
]
UnansweredMark = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_POINTS,
        allow_inf_nan=False,
        description="Points for an unanswered question (capped at the question's points)",
    ),
]
TimeLimit = Annotated[
    int, Field(ge=10, le=MAX_TIME_LIMIT, description="Seconds from the start of an attempt")
]
AttemptsAllowed = Annotated[int, Field(ge=1, le=100)]
ClassIds = Annotated[
    list[Id],
    Field(max_length=MAX_CLASSES, description="Classes the test is assigned to (yours)"),
]


def _check_options(options: list[OptionBase], info: ValidationInfo) -> list[OptionBase]:
    correct = sum(1 for o in options if o.is_correct)
    if correct == 0:
        raise ValueError("at least one option must be correct")
    if not info.data.get("multiple", False) and correct != 1:
        raise ValueError("exactly one option must be correct when `multiple` is false")
    texts: set[str] = set()
    for index, option in enumerate(options):
        if option.text in texts:
            raise ValueError(f"option {index} repeats the text of an earlier option")
        texts.add(option.text)
    return options


class OptionBase(StrictModel):
    text: str = Field(min_length=1, max_length=MAX_OPTION_TEXT)
    is_correct: bool = False


class OptionCreate(OptionBase):
    pass


class OptionUpdate(OptionBase):
    id: Id | None = Field(
        default=None, description="An existing option of this question; omit for a new one"
    )


class QuestionBase(StrictModel):
    text: str = Field(min_length=1, max_length=MAX_QUESTION_TEXT)
    points: Points = 1.0
    multiple: bool = False
    scoring_scheme: SchemeName | None = Field(
        default=None, description="Overrides the test's scheme for this question"
    )


class QuestionCreate(QuestionBase):
    options: list[OptionCreate] = Field(min_length=2, max_length=MAX_OPTIONS)

    _options = field_validator("options")(_check_options)


class QuestionUpdate(QuestionBase):
    id: Id | None = Field(
        default=None, description="An existing question of this test; omit for a new one"
    )
    options: list[OptionUpdate] = Field(min_length=2, max_length=MAX_OPTIONS)

    _options = field_validator("options")(_check_options)


def _check_window(closes_at: datetime | None, info: ValidationInfo) -> datetime | None:
    opens_at = info.data.get("opens_at")
    if closes_at is not None and opens_at is not None and closes_at <= opens_at:
        raise ValueError("must be later than opens_at")
    return closes_at


class ExamCreate(StrictModel):
    title: Title
    description: Description = ""
    questions: list[QuestionCreate] = Field(min_length=1, max_length=MAX_QUESTIONS)
    published: bool = Field(default=True, description="False keeps a draft hidden from students")
    scoring_scheme: SchemeName = "all_or_nothing"
    negative_fraction: NegativeFraction = 0.25
    unanswered_mark: UnansweredMark = 0.0
    time_limit_seconds: TimeLimit | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    attempts_allowed: AttemptsAllowed = 1
    shuffle_questions: bool = False
    shuffle_options: bool = False
    review_policy: ReviewPolicy = Field(
        default="after_submit", description="When students may see which answers were correct"
    )
    class_ids: ClassIds = []

    _window = field_validator("closes_at")(_check_window)


class ExamUpdate(StrictModel):
    """Fields left out stay as they are. `questions`, when given, is the whole new list:
    questions and options with an `id` are kept (and edited), those without are added, the
    rest removed. Without ids, an unchanged text matches its existing question or option, so
    unchanged options keep their ids either way."""

    title: Title | None = None
    description: Description | None = None
    questions: list[QuestionUpdate] | None = Field(
        default=None, min_length=1, max_length=MAX_QUESTIONS
    )
    published: bool | None = None
    scoring_scheme: SchemeName | None = None
    negative_fraction: NegativeFraction | None = None
    unanswered_mark: UnansweredMark | None = None
    time_limit_seconds: TimeLimit | None = None
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None
    attempts_allowed: AttemptsAllowed | None = None
    shuffle_questions: bool | None = None
    shuffle_options: bool | None = None
    review_policy: ReviewPolicy | None = None
    class_ids: ClassIds | None = None

    _window = field_validator("closes_at")(_check_window)

    @field_validator(
        "title",
        "description",
        "questions",
        "published",
        "scoring_scheme",
        "negative_fraction",
        "unanswered_mark",
        "attempts_allowed",
        "shuffle_questions",
        "shuffle_options",
        "review_policy",
        "class_ids",
    )
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Only called for fields the client sent: null would mean "unset" here, which these
        # fields cannot be (leave a field out to keep it).
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


# --------------------------------------------------------------------------- output


class OptionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    text: str


class OptionKeyOut(OptionOut):
    is_correct: bool


class QuestionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int
    text: str
    points: float
    multiple: bool
    scoring_scheme: SchemeName | None
    options: list[OptionOut]


class QuestionKeyOut(QuestionOut):
    options: list[OptionKeyOut]  # type: ignore[assignment]


class ExamSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str
    created_at: datetime


class _TestCommon(BaseModel):
    id: int
    title: str
    description: str
    scoring_scheme: SchemeName
    negative_fraction: float
    unanswered_mark: float
    time_limit_seconds: int | None
    opens_at: datetime | None
    closes_at: datetime | None
    attempts_allowed: int
    review_policy: ReviewPolicy
    question_count: int
    max_score: float
    created_at: datetime
    updated_at: datetime


class ExamTakerOut(_TestCommon):
    """What a student sees: no key material. Questions come in the order of the student's
    latest attempt when the test shuffles; before the test opens, and on a timed test outside
    an attempt in progress, there are none (see `withheld`)."""

    view: Literal["taker"] = "taker"
    questions: list[QuestionOut]
    withheld: Literal["not_open", "attempt_required"] | None = Field(
        description="Why `questions` is empty: `not_open` until `opens_at`; "
        "`attempt_required` on a timed test until you start an attempt "
        "(`POST /v1/tests/{id}/attempts`, which starts the clock) and after it ends. "
        "null when the questions are shown."
    )


class ExamOut(_TestCommon):
    """The owner's (and admins') view, with the key."""

    view: Literal["owner"] = "owner"
    owner_id: int
    published: bool
    shuffle_questions: bool
    shuffle_options: bool
    class_ids: list[int]
    key_version: int
    needs_regrade: bool
    revision: int
    questions: list[QuestionKeyOut]
