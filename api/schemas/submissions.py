from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt

from api.schemas.common import StrictModel
from api.schemas.tests import MAX_OPTIONS, MAX_QUESTIONS, QuestionOut

Correctness = Literal["correct", "partial", "incorrect", "unanswered"]
AnswerValue = StrictInt | Annotated[list[StrictInt], Field(max_length=MAX_OPTIONS * 2)] | None


class SubmitRequest(StrictModel):
    answers: dict[Annotated[str, Field(max_length=20)], AnswerValue] = Field(
        max_length=MAX_QUESTIONS * 2,
        description="Question id → the chosen option id, or a list of option ids for a "
        "`multiple` question. Unanswered questions may be left out (or null / []).",
        examples=[{"17": 52, "18": [55, 57]}],
    )


class QuestionResultOut(BaseModel):
    question_id: int
    points: float | None = Field(
        description="Points awarded; null, like `correctness`, unless the test's review "
        "policy lets you see per-question results (the total `score` is always shown)"
    )
    max_points: float
    correctness: Correctness | None = Field(
        description="null unless the test's review policy lets you see it"
    )


class DetailsOut(BaseModel):
    max_score: float
    percentage: float
    review_allowed: bool = Field(
        description="Whether per-question results (points and correctness) are shown"
    )
    questions: list[QuestionResultOut]


class SubmitResult(BaseModel):
    id: int = Field(description="The submission id")
    test_id: int
    attempt: int
    score: float = Field(description="Points earned")
    details: DetailsOut
    submitted_at: datetime


class SubmissionSummary(BaseModel):
    id: int
    test_id: int
    user_id: int
    username: str
    attempt: int
    score: float
    max_score: float
    previous_score: float | None = Field(
        description="The score before the last regrade (or re-import) that changed it"
    )
    source: Literal["api", "import"]
    submitted_at: datetime
    graded_at: datetime
    updated_at: datetime


class SubmissionOut(SubmissionSummary):
    key_version: int
    answers: dict[str, list[int]] = Field(description="Question id → chosen option ids")
    details: DetailsOut


class AttemptOut(BaseModel):
    id: int
    test_id: int
    user_id: int
    number: int
    started_at: datetime
    deadline: datetime | None = Field(description="Submit by then (null: no time limit)")
    server_time: datetime = Field(description="The server's clock, to show a countdown")
    submitted_at: datetime | None
    questions: list[QuestionOut] = Field(description="In this attempt's (shuffled) order")


class ItemStatsOut(BaseModel):
    question_id: int
    position: int
    max_points: float
    mean: float | None = Field(description="Mean points on this question")
    facility: float | None = Field(description="Mean / max points, a fraction (Moodle x100)")
    discrimination: float | None = Field(
        description="Correlation of the question's score with the rest of the test"
    )


class StatsOut(BaseModel):
    test_id: int
    attempts: int = Field(description="Students counted (first attempts only)")
    max_score: float
    mean: float | None
    median: float | None
    sd: float | None = Field(description="Sample standard deviation (n - 1)")
    needs_regrade: bool = Field(
        description="True when stored scores predate a key change; statistics always use "
        "the current key"
    )
    questions: list[ItemStatsOut]
