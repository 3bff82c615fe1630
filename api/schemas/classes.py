from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import StrictModel

MAX_ID = 2_147_483_647
MAX_MEMBERS = 2_000

Name = Annotated[str, Field(min_length=1, max_length=200)]
StudentIds = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]],
    Field(max_length=MAX_MEMBERS, description="Ids of students (users with the student role)"),
]


def _unique(ids: list[int] | None) -> list[int] | None:
    if ids is not None and len(set(ids)) != len(ids):
        raise ValueError("contains the same id twice")
    return ids


class ClassCreate(StrictModel):
    name: Name
    student_ids: StudentIds = []

    _unique_ids = field_validator("student_ids")(_unique)


class ClassUpdate(StrictModel):
    """`student_ids` replaces the members; `add_student_ids` / `remove_student_ids` edit them."""

    name: Name | None = None
    student_ids: StudentIds | None = None
    add_student_ids: StudentIds | None = None
    remove_student_ids: StudentIds | None = None

    _unique_ids = field_validator("student_ids", "add_student_ids", "remove_student_ids")(_unique)

    @field_validator("name")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may not be null; leave the field out to keep the name")
        return value


class ClassOut(BaseModel):
    id: int
    name: str
    owner_id: int
    student_ids: list[int]
    test_ids: list[int] = Field(description="Tests assigned to this class")
    created_at: datetime
    updated_at: datetime


class ClassSummary(BaseModel):
    id: int
    name: str
    owner_id: int
    member_count: int
    created_at: datetime
