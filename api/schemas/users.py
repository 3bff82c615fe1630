from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from api.schemas.common import StrictModel

RoleName = Literal["admin", "instructor", "student"]
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
MIN_PASSWORD = 8
MAX_PASSWORD = 128


def _strong(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"must be at least {MIN_PASSWORD} characters")
    if password.isdigit() or password.isalpha() or len(set(password)) < 4:
        raise ValueError("is too weak: mix letters with digits or symbols")
    return password


class UserCreate(StrictModel):
    username: str = Field(min_length=3, max_length=64, pattern=USERNAME_PATTERN)
    password: str = Field(max_length=MAX_PASSWORD)
    role: RoleName = "student"
    email: EmailStr | None = None
    full_name: str | None = Field(default=None, max_length=200)

    _check_password = field_validator("password")(_strong)


class UserUpdate(StrictModel):
    username: str | None = Field(
        default=None, min_length=3, max_length=64, pattern=USERNAME_PATTERN
    )
    password: str | None = Field(default=None, max_length=MAX_PASSWORD)
    current_password: str | None = Field(
        default=None, max_length=1024, description="Required when changing your own password"
    )
    role: RoleName | None = None
    email: EmailStr | None = None
    full_name: str | None = Field(default=None, max_length=200)
    is_active: bool | None = None

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: str | None) -> str | None:
        return None if value is None else _strong(value)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: RoleName
    email: str | None = None
    full_name: str | None = None
    is_active: bool
    created_at: datetime
