"""Authoring tests: create, validate, list, read (with and without the key), update, delete."""

from __future__ import annotations

import copy

import pytest
from exam_factories import class_of, new_test, question, quiz_body, submit, without_positions
from sqlalchemy import func, select

from common import models as m


async def test_create_returns_whole_test_with_ids(client, instructor, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h, time_limit_seconds=600, attempts_allowed=2)
    assert test["view"] == "owner" and test["owner_id"] == instructor.id
    assert test["title"] == "Quiz" and test["published"] is True
    assert test["max_score"] == 6.0
    assert test["time_limit_seconds"] == 600 and test["attempts_allowed"] == 2
    assert test["scoring_scheme"] == "all_or_nothing" and test["review_policy"] == "after_submit"
    assert [q["position"] for q in test["questions"]] == [0, 1, 2]
    q1 = test["questions"][1]
    assert q1["multiple"] is True and q1["points"] == 3.0
    assert [o["is_correct"] for o in q1["options"]] == [True, True, False, False]
    ids = [o["id"] for q in test["questions"] for o in q["options"]]
    assert len(set(ids)) == len(ids) == 9
    r = await client.get(f"/v1/tests/{test['id']}", headers=h)
    assert r.status_code == 200 and r.json() == test


async def test_students_never_see_key_material(client, instructor, student, auth_for):
    test = await new_test(client, auth_for(instructor))
    r = await client.get(f"/v1/tests/{test['id']}", headers=auth_for(student))
    assert r.status_code == 200
    body = r.json()
    assert body["view"] == "taker"
    assert "is_correct" not in r.text and "needs_regrade" not in r.text
    assert "key_version" not in r.text and "class_ids" not in r.text
    assert [len(q["options"]) for q in body["questions"]] == [3, 4, 2]
    assert set(body["questions"][0]["options"][0]) == {"id", "position", "text"}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda b: b["questions"][1].update(options=b["questions"][1]["options"][:1]),
         "questions[1].options"),
        (lambda b: [o.update(is_correct=False) for o in b["questions"][2]["options"]],
         "questions[2].options"),
        (lambda b: [o.update(is_correct=True) for o in b["questions"][0]["options"]],
         "questions[0].options"),
        (lambda b: b["questions"][0].update(text=""), "questions[0].text"),
        (lambda b: b["questions"][0].update(text="x" * 5001), "questions[0].text"),
        (lambda b: b["questions"][2]["options"][1].update(text="   "),
         "questions[2].options[1].text"),
        (lambda b: b["questions"][1]["options"][3].update(text="2"), "questions[1].options"),
        (lambda b: b["questions"][0].update(points=-1), "questions[0].points"),
        (lambda b: b["questions"][0].update(points=10_000), "questions[0].points"),
        (lambda b: b["questions"][0].update(id=5), "questions[0].id"),
        (lambda b: b["questions"][0].update(scoring_scheme="bogus"), "questions[0].scoring_scheme"),
        (lambda b: b.update(questions=[]), "questions"),
        (lambda b: b.update(questions=b["questions"] * 101), "questions"),
        (lambda b: b["questions"][0].update(options=[{"text": str(i), "is_correct": i == 0}
                                                     for i in range(21)]),
         "questions[0].options"),
        (lambda b: b.update(title=""), "title"),
        (lambda b: b.update(title="t" * 201), "title"),
        (lambda b: b.update(attempts_allowed=0), "attempts_allowed"),
        (lambda b: b.update(time_limit_seconds=5), "time_limit_seconds"),
        (lambda b: b.update(negative_fraction=1.5), "negative_fraction"),
        (lambda b: b.update(opens_at="2030-01-02T00:00:00Z", closes_at="2030-01-01T00:00:00Z"),
         "closes_at"),
        (lambda b: b.update(opens_at="2030-01-02T00:00:00"), "opens_at"),
        (lambda b: b.update(review_policy="sometimes"), "review_policy"),
        (lambda b: b.update(class_ids=[99999]), "class_ids[0]"),
        (lambda b: b.update(class_ids=[2**40]), "class_ids[0]"),
        (lambda b: b.update(colour="red"), "colour"),
    ],
)  # fmt: skip
async def test_create_validation_names_the_field(client, instructor, auth_for, mutate, path):
    body = quiz_body()
    mutate(body)
    r = await client.post("/v1/tests", json=body, headers=auth_for(instructor))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert path in [d["path"] for d in error["details"]], error


async def test_wrong_types_are_422_not_500(client, instructor, auth_for):
    h = auth_for(instructor)
    for body in (
        [],
        "text",
        {"title": 5, "questions": "many"},
        {**quiz_body(), "questions": [{"text": "Q", "options": None}]},
    ):
        r = await client.post("/v1/tests", json=body, headers=h)
        assert r.status_code == 422, body
    r = await client.post(
        "/v1/tests", content=b"{not json", headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    for bad in ("0", "-3", "abc", str(2**31)):
        assert (await client.get(f"/v1/tests/{bad}", headers=h)).status_code == 422


async def test_list_visibility_by_role(client, make_user, auth_for, db):
    teacher, other_teacher, admin = (
        make_user("instructor"),
        make_user("instructor"),
        make_user("admin"),
    )
    alice, bob = make_user("student"), make_user("student")
    h = auth_for(teacher)
    group = class_of(db, teacher, alice)
    open_test = await new_test(client, h, title="open")
    draft = await new_test(client, h, title="draft", published=False)
    for_class = await new_test(client, h, title="class", class_ids=[group.id])
    theirs = await new_test(client, auth_for(other_teacher), title="theirs")

    async def titles(user):
        r = await client.get("/v1/tests", headers=auth_for(user))
        assert r.status_code == 200
        assert r.headers["x-total-count"] == str(len(r.json()))
        assert all(set(t) == {"id", "title", "description", "created_at"} for t in r.json())
        return [t["title"] for t in r.json()]

    assert await titles(teacher) == ["open", "draft", "class"]
    assert await titles(other_teacher) == ["theirs"]
    assert await titles(admin) == ["open", "draft", "class", "theirs"]
    assert await titles(alice) == ["open", "class", "theirs"]
    assert await titles(bob) == ["open", "theirs"]
    # Hidden tests are 404, whatever the reason.
    for test in (draft, for_class):
        assert (
            await client.get(f"/v1/tests/{test['id']}", headers=auth_for(bob))
        ).status_code == 404
    r = await client.get(f"/v1/tests/{theirs['id']}", headers=h)
    assert r.status_code == 404
    assert (
        await client.get(f"/v1/tests/{for_class['id']}", headers=auth_for(alice))
    ).status_code == 200
    assert (await client.get(f"/v1/tests/{open_test['id']}", headers=auth_for(admin))).json()[
        "view"
    ] == "owner"
    r = await client.get("/v1/tests", params={"limit": 2, "offset": 1}, headers=auth_for(admin))
    assert [t["title"] for t in r.json()] == ["draft", "class"]
    assert r.headers["x-total-count"] == "4"


async def test_update_keeps_ids_of_unchanged_options(client, instructor, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h)
    before = {o["id"] for q in test["questions"] for o in q["options"]}
    # A client that sends ids back, editing one option's text and appending a question.
    questions = copy.deepcopy(test["questions"])
    for q in questions:
        for key in ("position",):
            q.pop(key)
        for o in q["options"]:
            o.pop("position")
    questions[0]["options"][2]["text"] = "Marseille"
    questions.append(question("New?", ["yes", "no"], {0}))
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": questions}, headers=h)
    assert r.status_code == 200, r.text
    updated = r.json()
    after = {o["id"] for q in updated["questions"][:3] for o in q["options"]}
    assert after == before
    assert updated["questions"][0]["options"][2]["text"] == "Marseille"
    assert len(updated["questions"]) == 4 and updated["max_score"] == 7.0
    # A client that sends no ids at all: unchanged texts keep their ids; questions reorder.
    body = quiz_body()["questions"]
    body.reverse()
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": body}, headers=h)
    assert r.status_code == 200, r.text
    again = r.json()
    assert [q["id"] for q in again["questions"]] == [
        updated["questions"][2]["id"],
        updated["questions"][1]["id"],
        updated["questions"][0]["id"],
    ]
    kept = {o["id"] for q in again["questions"] for o in q["options"]}
    assert kept == before - {updated["questions"][0]["options"][2]["id"]} | {
        again["questions"][2]["options"][2]["id"]
    }
    assert again["questions"][2]["options"][2]["id"] not in before  # "Nice" is new again
    assert again["revision"] == 3


async def test_update_fields_and_validation(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h)
    url = f"/v1/tests/{test['id']}"
    r = await client.put(url, json={"title": "Renamed", "time_limit_seconds": 60}, headers=h)
    assert r.status_code == 200
    assert r.json()["title"] == "Renamed" and r.json()["time_limit_seconds"] == 60
    assert r.json()["questions"] == test["questions"]
    assert r.json()["key_version"] == 1  # wording and settings outside the key
    r = await client.put(url, json={"time_limit_seconds": None}, headers=h)
    assert r.status_code == 200 and r.json()["time_limit_seconds"] is None
    cases = [
        ({"title": None}, "title"),
        ({"published": None}, "published"),
        ({"questions": [{**test["questions"][0], "id": 10**6}]}, "questions[0].id"),
        ({"questions": [{"id": test["questions"][1]["id"], "text": "Q", "options": [
            {"id": test["questions"][0]["options"][0]["id"], "text": "a", "is_correct": True},
            {"text": "b"}]}]}, "questions[0].options[0].id"),
        ({"opens_at": "2030-01-02T00:00:00Z", "closes_at": "2030-01-01T00:00:00Z"}, "closes_at"),
    ]  # fmt: skip
    for body, path in cases:
        for q in body.get("questions", []):
            q.pop("position", None)
            for o in q.get("options", []):
                o.pop("position", None)
        r = await client.put(url, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert path in [d["path"] for d in r.json()["error"]["details"]], r.json()
    # A window that is only wrong together with the stored value.
    assert (
        await client.put(url, json={"opens_at": "2030-01-02T00:00:00Z"}, headers=h)
    ).status_code == 200
    r = await client.put(url, json={"closes_at": "2030-01-01T00:00:00Z"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "closes_at"
    # Others cannot edit it.
    other = auth_for(make_user("instructor"))
    assert (await client.put(url, json={"title": "x"}, headers=other)).status_code == 404
    assert (await client.delete(url, headers=other)).status_code == 404


async def test_key_change_with_submissions_needs_regrade(client, instructor, student, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h)
    url = f"/v1/tests/{test['id']}"

    # No submissions yet: the key version moves, but there is nothing to regrade.
    questions = without_positions(test["questions"])
    questions[2]["options"][0]["is_correct"], questions[2]["options"][1]["is_correct"] = True, False
    r = await client.put(url, json={"questions": questions}, headers=h)
    assert r.json()["key_version"] == 2 and r.json()["needs_regrade"] is False
    assert (await submit(client, test, auth_for(student), {0: 0})).status_code == 201
    # Wording only: no new key version.
    questions[0]["text"] = "What is the capital of France?"
    r = await client.put(url, json={"questions": questions}, headers=h)
    assert r.json()["key_version"] == 2 and r.json()["needs_regrade"] is False
    # Points change the key.
    questions[0]["points"] = 4
    r = await client.put(url, json={"questions": questions}, headers=h)
    assert r.json()["key_version"] == 3 and r.json()["needs_regrade"] is True


async def test_delete_removes_everything_of_the_test(client, instructor, student, auth_for, db):
    h = auth_for(instructor)
    group = class_of(db, instructor, student)
    doomed = await new_test(client, h, class_ids=[group.id], attempts_allowed=2)
    kept = await new_test(client, h, title="kept")
    sh = auth_for(student)
    for test in (doomed, kept):
        assert (await submit(client, test, sh, {0: 0})).status_code == 201
        db.add(m.Attendance(test_id=test["id"], user_id=student.id, status="present"))
    assert (await client.post(f"/v1/tests/{doomed['id']}/attempts", headers=sh)).status_code == 201
    db.commit()
    r = await client.delete(f"/v1/tests/{doomed['id']}", headers=h)
    assert r.status_code == 204
    assert (await client.get(f"/v1/tests/{doomed['id']}", headers=h)).status_code == 404
    assert (await client.delete(f"/v1/tests/{doomed['id']}", headers=h)).status_code == 404
    db.expire_all()

    def count(model, column):
        return db.scalar(select(func.count()).select_from(model).where(column == doomed["id"]))

    assert count(m.Exam, m.Exam.id) == 0
    assert count(m.Question, m.Question.test_id) == 0
    assert count(m.ExamClass, m.ExamClass.test_id) == 0
    assert count(m.Attempt, m.Attempt.test_id) == 0
    assert count(m.Submission, m.Submission.test_id) == 0
    assert count(m.Attendance, m.Attendance.test_id) == 0
    assert db.scalar(select(func.count()).select_from(m.Option)) == 9  # only the kept test's
    assert db.scalar(select(func.count()).select_from(m.Submission)) == 1
    # The class and its members stay.
    assert (await client.get(f"/v1/classes/{group.id}", headers=h)).json()["student_ids"] == [
        student.id
    ]
