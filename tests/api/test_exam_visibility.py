"""What a student may see of a test, and when (common.exam_visibility), over HTTP.

Before the window opens: metadata only. A timed test: questions only inside an attempt in
progress. Ownership counts only while the owner is an instructor. Every check also crosses the
response cache: a view computed for one student or one moment is never served to another.
(The review policy's effect on per-question points is in test_submissions.)
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from exam_factories import new_test, submit
from sqlalchemy import update

from common import models as m
from common.storage import new_key

QUESTION_TEXT = "Capital of France?"  # the first question of exam_factories.three_questions
RIGHT = {0: 0, 1: [0, 1], 2: 1}


def metadata_only(body: dict, reason: str) -> None:
    assert body["view"] == "taker"
    assert body["questions"] == [] and body["withheld"] == reason
    assert body["question_count"] == 3 and body["max_score"] == 6
    assert body["title"] == "Quiz" and body["description"] == "A short quiz"


def move(db, test_id: int, **values) -> None:
    """Change a test behind the API's back (no cache invalidation), as time passing would."""
    db.execute(update(m.Exam).where(m.Exam.id == test_id).values(**values))
    db.commit()


async def test_before_opens_a_student_sees_metadata_only(client, db, instructor, student, auth_for):
    h, sh = auth_for(instructor), auth_for(student)
    opens = datetime.now(UTC) + timedelta(days=1)
    test = await new_test(client, h, opens_at=opens.isoformat())
    url = f"/v1/tests/{test['id']}"
    owner = (await client.get(url, headers=h)).json()
    assert owner["view"] == "owner" and len(owner["questions"]) == 3
    r = await client.get(url, headers=sh)
    assert r.status_code == 200
    metadata_only(r.json(), "not_open")
    assert datetime.fromisoformat(r.json()["opens_at"]) == opens
    assert QUESTION_TEXT not in r.text and "Paris" not in r.text
    listing = await client.get("/v1/tests", headers=sh)
    assert [t["id"] for t in listing.json()] == [test["id"]]
    assert "questions" not in listing.json()[0]
    assert QUESTION_TEXT not in listing.text and "Paris" not in listing.text
    r = await client.post(f"{url}/attempts", headers=sh)
    assert r.status_code == 403 and r.json()["error"]["code"] == "test_not_open"
    # The window opens (nothing invalidates the cache): the questions appear.
    move(db, test["id"], opens_at=datetime.now(UTC) - timedelta(seconds=1))
    opened = (await client.get(url, headers=sh)).json()
    assert opened["withheld"] is None and len(opened["questions"]) == 3
    assert "is_correct" not in str(opened)


async def test_a_view_cached_while_open_is_not_served_before_the_window(
    client, db, instructor, student, auth_for
):
    test = await new_test(client, auth_for(instructor))
    url = f"/v1/tests/{test['id']}"
    sh = auth_for(student)
    assert len((await client.get(url, headers=sh)).json()["questions"]) == 3  # cached now
    # Postponed behind the API's back: the decision is made per request, not cached.
    move(db, test["id"], opens_at=datetime.now(UTC) + timedelta(hours=2))
    metadata_only((await client.get(url, headers=sh)).json(), "not_open")


async def test_timed_test_shows_questions_only_inside_an_open_attempt(
    client, db, instructor, make_user, auth_for
):
    test = await new_test(client, auth_for(instructor), time_limit_seconds=600, attempts_allowed=2)
    url = f"/v1/tests/{test['id']}"
    taker, other = make_user("student"), make_user("student")
    th, oh = auth_for(taker), auth_for(other)
    r = await client.get(url, headers=th)
    metadata_only(r.json(), "attempt_required")
    assert QUESTION_TEXT not in r.text
    started = await client.post(f"{url}/attempts", headers=th)
    assert started.status_code == 201 and len(started.json()["questions"]) == 3
    during = (await client.get(url, headers=th)).json()
    assert during["withheld"] is None and len(during["questions"]) == 3
    # Another student, same moment, no attempt: the taker's cached view is not theirs.
    metadata_only((await client.get(url, headers=oh)).json(), "attempt_required")
    assert (await submit(client, test, th, RIGHT)).status_code == 201
    metadata_only((await client.get(url, headers=th)).json(), "attempt_required")
    # The second attempt runs out: the questions go at the deadline, grace or not.
    second = await client.post(f"{url}/attempts", headers=th)
    assert second.status_code == 201 and len(second.json()["questions"]) == 3
    db.execute(
        update(m.Attempt)
        .where(m.Attempt.id == second.json()["id"])
        .values(deadline=datetime.now(UTC) - timedelta(seconds=5))
    )
    db.commit()
    metadata_only((await client.get(url, headers=th)).json(), "attempt_required")
    resumed = await client.post(f"{url}/attempts", headers=th)  # within the submit grace
    assert resumed.status_code == 200 and resumed.json()["questions"] == []


async def test_untimed_open_test_shows_questions_without_an_attempt(
    client, instructor, student, auth_for
):
    test = await new_test(client, auth_for(instructor))
    body = (await client.get(f"/v1/tests/{test['id']}", headers=auth_for(student))).json()
    assert body["withheld"] is None and len(body["questions"]) == 3
    assert body["question_count"] == 3


async def test_a_demoted_instructor_loses_the_owner_view(
    client, db, admin, instructor, student, auth_for
):
    ih, sh, ah = auth_for(instructor), auth_for(student), auth_for(admin)
    test = await new_test(client, ih, review_policy="never")
    url = f"/v1/tests/{test['id']}"
    sub = (await submit(client, test, sh, {0: 0})).json()
    key = new_key()
    db.add(
        m.StoredFile(
            key=key,
            owner_id=student.id,
            test_id=test["id"],
            original_name="answers.pdf",
            size=10,
            content_type="application/pdf",
            sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        )
    )
    db.commit()
    # As the test's instructor: the key, every submission, its points, the student's file.
    assert (await client.get(url, headers=ih)).json()["view"] == "owner"
    assert (await client.get(f"/v1/submissions/{sub['id']}", headers=ih)).status_code == 200
    assert len((await client.get(f"{url}/submissions", headers=ih)).json()) == 1
    assert (await client.get(f"/v1/files/{key}/info", headers=ih)).status_code == 200

    r = await client.put(f"/v1/users/{instructor.id}", json={"role": "student"}, headers=ah)
    assert r.status_code == 200

    # Demoted: a student like any other, whoever wrote the test.
    r = await client.get(url, headers=ih)
    assert r.status_code == 200 and r.json()["view"] == "taker"
    assert "is_correct" not in r.text and "class_ids" not in r.json()
    assert (await client.get(f"/v1/submissions/{sub['id']}", headers=ih)).status_code == 404
    listed = await client.get(f"{url}/submissions", headers=ih)
    assert listed.status_code == 200 and listed.json() == []
    assert listed.headers["x-total-count"] == "0"
    assert (await client.get(f"/v1/files/{key}/info", headers=ih)).status_code == 404
    files = await client.get("/v1/files", params={"test_id": test["id"]}, headers=ih)
    assert files.status_code == 200 and files.json() == []
    for path in ("results.csv", "stats"):
        assert (await client.get(f"{url}/{path}", headers=ih)).status_code == 403
    assert (await client.post(f"{url}/regrade", headers=ih)).status_code == 403
    assert (await client.put(url, json={"title": "mine"}, headers=ih)).status_code == 403
    # Taking their own test as a student: the review policy applies to them too.
    taken = (await submit(client, test, ih, RIGHT)).json()
    assert [q["points"] for q in taken["details"]["questions"]] == [None, None, None]

    # Promoted again: the test is theirs again.
    r = await client.put(f"/v1/users/{instructor.id}", json={"role": "instructor"}, headers=ah)
    assert r.status_code == 200
    assert (await client.get(url, headers=ih)).json()["view"] == "owner"
    assert len((await client.get(f"{url}/submissions", headers=ih)).json()) == 2


async def test_a_demoted_admin_loses_admin_reach(client, make_user, instructor, auth_for):
    first, second = make_user("admin"), make_user("admin")
    fh = auth_for(first)
    test = await new_test(client, auth_for(instructor), published=False)
    url = f"/v1/tests/{test['id']}"
    assert (await client.get(url, headers=fh)).json()["view"] == "owner"
    r = await client.put(
        f"/v1/users/{first.id}", json={"role": "student"}, headers=auth_for(second)
    )
    assert r.status_code == 200
    assert (await client.get(url, headers=fh)).status_code == 404  # a draft, not theirs
