"""Helpers for the tests, classes and submissions tests: request bodies and answer maps."""

from __future__ import annotations

import copy
from typing import Any


def question(
    text: str, options: list[str], correct: set[int], *, multiple: bool = False, **kw: Any
) -> dict[str, Any]:
    return {
        "text": text,
        "multiple": multiple,
        "options": [{"text": o, "is_correct": i in correct} for i, o in enumerate(options)],
        **kw,
    }


def three_questions() -> list[dict[str, Any]]:
    """Max 2 + 3 + 1 = 6 points.
    Q0: 2 points, single, correct option 0 of 3.
    Q1: 3 points, multiple, correct options 0 and 1 of 4 (n_correct 2, n_wrong 2).
    Q2: 1 point, single, correct option 1 of 2."""
    return [
        question("Capital of France?", ["Paris", "Lyon", "Nice"], {0}, points=2),
        question("Primes?", ["2", "3", "4", "6"], {0, 1}, multiple=True, points=3),
        question("2 + 2?", ["3", "4"], {1}),
    ]


def quiz_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Quiz",
        "description": "A short quiz",
        "questions": three_questions(),
    }
    body.update(overrides)
    return body


async def new_test(client: Any, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    r = await client.post("/v1/tests", json=quiz_body(**overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def option(test: dict[str, Any], q: int, o: int) -> int:
    return test["questions"][q]["options"][o]["id"]


def qid(test: dict[str, Any], q: int) -> str:
    return str(test["questions"][q]["id"])


def answers(test: dict[str, Any], choice: dict[int, int | list[int] | None]) -> dict[str, Any]:
    """{question index: option index or list of indexes} -> the API's {question id: ids}."""
    out: dict[str, Any] = {}
    for q, chosen in choice.items():
        if chosen is None:
            out[qid(test, q)] = None
        elif isinstance(chosen, list):
            out[qid(test, q)] = [option(test, q, o) for o in chosen]
        else:
            out[qid(test, q)] = option(test, q, chosen)
    return out


async def submit(
    client: Any, test: dict[str, Any], headers: dict[str, str], choice: dict[int, Any]
) -> Any:
    return await client.post(
        f"/v1/tests/{test['id']}/submit", json={"answers": answers(test, choice)}, headers=headers
    )


async def new_class(client: Any, headers: dict[str, str], *students: Any, name: str = "G") -> Any:
    """A class with `students` as members, created over HTTP as its instructor would."""
    body = {"name": name, "student_ids": [s.id for s in students]}
    r = await client.post("/v1/classes", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def class_of(db: Any, instructor: Any, *students: Any) -> Any:
    """A class owned by `instructor` with `students` as members, written through `db`."""
    import uuid

    from common.models import ClassMember, SchoolClass

    group = SchoolClass(owner_id=instructor.id, name=f"Class {uuid.uuid4().hex[:6]}")
    db.add(group)
    db.flush()
    db.add_all([ClassMember(class_id=group.id, user_id=s.id) for s in students])
    db.commit()
    return group


async def record_attendance(
    client: Any, headers: dict[str, str], test: Any, user: Any, status: str = "present"
) -> dict[str, Any]:
    """A record by hand (POST /v1/attendance) of a test and a user (ORM rows)."""
    r = await client.post(
        "/v1/attendance",
        json={"test_id": test.id, "user_id": user.id, "status": status},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def without_positions(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A test's questions as read back, made into a PUT body (positions are server-assigned)."""
    out = copy.deepcopy(questions)
    for q in out:
        q.pop("position")
        for o in q["options"]:
            o.pop("position")
    return out
