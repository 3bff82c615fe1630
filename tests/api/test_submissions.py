"""Taking tests: instant scoring, answer validation, attempts and time limits, review policy,
reading submissions, statistics. Scores are computed by hand in the comments.

The quiz (exam_factories.three_questions), max 6 points:
    Q0: 2 points, single, correct option 0 of 3
    Q1: 3 points, multiple, correct options 0 and 1 of 4 (2 correct, 2 wrong)
    Q2: 1 point, single, correct option 1 of 2
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from exam_factories import new_test, option, qid, question, submit
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from common import models as m

RIGHT = {0: 0, 1: [0, 1], 2: 1}


def points(result):
    return [q["points"] for q in result["details"]["questions"]]


def set_ago(db, model, row_id, column, seconds_ago):
    """Set a row's time column to `seconds_ago` seconds before now, behind the API's back."""
    db.execute(
        update(model)
        .where(model.id == row_id)
        .values({column: datetime.now(UTC) - timedelta(seconds=seconds_ago)})
    )
    db.commit()


@pytest.mark.parametrize(
    ("test_settings", "choice", "expected_points", "expected_score"),
    [
        # all or nothing: full marks or nothing per question.
        ({}, RIGHT, [2, 3, 1], 6),
        ({}, {0: 0, 1: [0], 2: 0}, [2, 0, 0], 2),
        # partial: Q1 [0] = 1/2 of 3 = 1.5; [0, 2] = 1/2 - 1/2 = 0; [0, 1, 2] = 1 - 1/2 = 0.5
        # of 3 = 1.5; single-answer questions stay all or nothing.
        ({"scoring_scheme": "partial"}, {0: 0, 1: [0], 2: 1}, [2, 1.5, 1], 4.5),
        ({"scoring_scheme": "partial"}, {0: 1, 1: [0, 2]}, [0, 0, 0], 0),
        ({"scoring_scheme": "partial"}, {1: [0, 1, 2]}, [0, 1.5, 0], 1.5),
        # negative, 1/4: a wrong Q0 costs 0.5, a wrong Q2 0.25; 3 - 0.5 - 0.25 = 2.25.
        ({"scoring_scheme": "negative", "negative_fraction": 0.25}, {0: 1, 1: [0, 1], 2: 0},
         [-0.5, 3, -0.25], 2.25),
        # ...but the total never goes below 0: -0.5 - 0.75 = -1.25 -> 0.
        ({"scoring_scheme": "negative", "negative_fraction": 0.25}, {0: 1, 1: [2]},
         [-0.5, -0.75, 0], 0),
        # unanswered mark 0.5: Q0 right (2) + Q1 blank (0.5) + Q2 blank (0.5) = 3.
        ({"unanswered_mark": 0.5}, {0: 0}, [2, 0.5, 0.5], 3),
        ({"unanswered_mark": 0.5}, {0: 0, 1: [], 2: None}, [2, 0.5, 0.5], 3),
    ],
)  # fmt: skip
async def test_instant_score_per_scheme(
    client, instructor, student, auth_for, test_settings, choice, expected_points, expected_score
):
    test = await new_test(client, auth_for(instructor), **test_settings)
    r = await submit(client, test, auth_for(student), choice)
    assert r.status_code == 201, r.text
    result = r.json()
    assert result["score"] == expected_score
    assert points(result) == expected_points
    assert result["details"]["max_score"] == 6
    assert result["details"]["percentage"] == round(100 * expected_score / 6, 4)
    assert r.headers["location"] == f"/v1/submissions/{result['id']}"


async def test_per_question_scheme_overrides_the_test(client, instructor, student, auth_for):
    qs = [
        question("multi", ["a", "b", "c", "d"], {0, 1}, multiple=True, points=3,
                 scoring_scheme="partial"),
        question("single", ["a", "b"], {0}, points=2),
    ]  # fmt: skip
    test = await new_test(client, auth_for(instructor), questions=qs)
    # Q0 partial: 1/2 of 3 = 1.5; Q1 wrong under the test's all-or-nothing: 0.
    r = await submit(client, test, auth_for(student), {0: [0], 1: 1})
    assert points(r.json()) == [1.5, 0] and r.json()["score"] == 1.5


async def test_bad_answers_are_422_and_store_nothing(client, instructor, student, auth_for, db):
    test = await new_test(client, auth_for(instructor))
    h = auth_for(student)
    url = f"/v1/tests/{test['id']}/submit"
    cases = [
        ({"999999": option(test, 0, 0)}, "answers.999999", "unknown_question"),
        ({qid(test, 0): option(test, 2, 0)}, f"answers.{qid(test, 0)}", "foreign_option"),
        ({qid(test, 0): [option(test, 0, 0), option(test, 0, 1)]}, f"answers.{qid(test, 0)}",
         "single_answer"),
        ({qid(test, 1): [option(test, 1, 0), option(test, 1, 0)]}, f"answers.{qid(test, 1)}.1",
         "duplicate_option"),
        ({qid(test, 0): 10**12}, f"answers.{qid(test, 0)}", "unknown_option"),
        ({"abc": 1}, "answers.abc", "invalid_question_id"),
    ]  # fmt: skip
    for body, path, code in cases:
        r = await client.post(url, json={"answers": body}, headers=h)
        assert r.status_code == 422, (body, r.text)
        details = r.json()["error"]["details"]
        assert {"path": path, "code": code} in [
            {"path": d["path"], "code": d.get("code")} for d in details
        ], details
    for body in (
        {"answers": {qid(test, 0): "1"}},
        {"answers": {qid(test, 0): True}},
        {"answers": []},
        {"answers": {qid(test, 0): 1.0}},
        {},
        {"answers": {}, "x": 1},
    ):
        r = await client.post(url, json=body, headers=h)
        assert r.status_code == 422, (body, r.text)  # fmt: skip
    assert db.scalar(select(func.count()).select_from(m.Submission)) == 0
    assert db.scalar(select(func.count()).select_from(m.Attempt)) == 0


async def test_attempt_limit_and_concurrent_submits(client, instructor, student, auth_for, db):
    test = await new_test(client, auth_for(instructor))
    h = auth_for(student)
    results = await asyncio.gather(*(submit(client, test, h, RIGHT) for _ in range(10)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 9, [r.text for r in results]
    assert {r.json()["error"]["code"] for r in results if r.status_code == 409} <= {
        "attempts_exhausted",
        "already_submitted",
    }
    assert db.scalar(select(func.count()).select_from(m.Submission)) == 1
    r = await submit(client, test, h, RIGHT)
    assert r.status_code == 409 and r.json()["error"]["code"] == "attempts_exhausted"


async def test_timed_attempt_start_resume_submit(client, instructor, student, auth_for, db):
    test = await new_test(client, auth_for(instructor), time_limit_seconds=600)
    h = auth_for(student)
    url = f"/v1/tests/{test['id']}/attempts"
    r = await submit(client, test, h, RIGHT)
    assert r.status_code == 409 and r.json()["error"]["code"] == "no_open_attempt"
    r = await client.post(url, headers=h)
    assert r.status_code == 201, r.text
    attempt = r.json()
    started = datetime.fromisoformat(attempt["started_at"])
    assert datetime.fromisoformat(attempt["deadline"]) == started + timedelta(seconds=600)
    server_time = datetime.fromisoformat(attempt["server_time"])
    assert abs((server_time - datetime.now(UTC)).total_seconds()) < 5
    assert attempt["number"] == 1 and attempt["submitted_at"] is None
    assert "is_correct" not in r.text
    again = await client.post(url, headers=h)
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k != "server_time"} == {
        k: v for k, v in attempt.items() if k != "server_time"
    }
    r = await submit(client, test, h, RIGHT)
    assert r.status_code == 201 and r.json()["attempt"] == 1 and r.json()["score"] == 6
    r = await client.post(url, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "attempts_exhausted"


async def test_twenty_concurrent_starts_create_one_attempt(
    client, instructor, student, auth_for, db
):
    test = await new_test(client, auth_for(instructor), time_limit_seconds=600)
    h = auth_for(student)
    url = f"/v1/tests/{test['id']}/attempts"
    results = await asyncio.gather(*(client.post(url, headers=h) for _ in range(20)))
    assert sorted(r.status_code for r in results) == [200] * 19 + [201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    count = db.scalar(
        select(func.count()).select_from(m.Attempt).where(m.Attempt.test_id == test["id"])
    )
    assert count == 1
    # The guarantee is the database's: a second row for the same attempt number is refused.
    db.add(
        m.Attempt(test_id=test["id"], user_id=student.id, number=1, started_at=datetime.now(UTC))
    )
    with pytest.raises(IntegrityError):
        db.commit()
    db.rollback()


async def test_late_submit_is_409_and_stores_nothing(client, instructor, student, auth_for, db):
    test = await new_test(client, auth_for(instructor), time_limit_seconds=60, attempts_allowed=2)
    h = auth_for(student)
    url = f"/v1/tests/{test['id']}/attempts"
    attempt = (await client.post(url, headers=h)).json()

    def move_deadline(seconds_ago):
        set_ago(db, m.Attempt, attempt["id"], "deadline", seconds_ago)

    move_deadline(31)  # past the 30 s grace period
    r = await submit(client, test, h, RIGHT)
    assert r.status_code == 409 and r.json()["error"]["code"] == "attempt_expired"
    assert db.scalar(select(func.count()).select_from(m.Submission)) == 0
    # The expired attempt is used up: the next start opens attempt 2.
    second = await client.post(url, headers=h)
    assert second.status_code == 201 and second.json()["number"] == 2
    attempt = second.json()
    move_deadline(10)  # late, but within the grace period
    r = await submit(client, test, h, RIGHT)
    assert r.status_code == 201 and r.json()["attempt"] == 2


async def test_deadline_never_passes_the_close_time(client, instructor, student, auth_for):
    closes = datetime.now(UTC) + timedelta(seconds=120)
    test = await new_test(
        client, auth_for(instructor), time_limit_seconds=3600, closes_at=closes.isoformat()
    )
    r = await client.post(f"/v1/tests/{test['id']}/attempts", headers=auth_for(student))
    assert datetime.fromisoformat(r.json()["deadline"]) == closes


async def test_window_is_403_outside(client, instructor, student, auth_for):
    h, sh = auth_for(instructor), auth_for(student)
    now = datetime.now(UTC)
    future = await new_test(client, h, opens_at=(now + timedelta(hours=1)).isoformat())
    past = await new_test(
        client,
        h,
        opens_at=(now - timedelta(hours=2)).isoformat(),
        closes_at=(now - timedelta(hours=1)).isoformat(),
    )
    for test, code in ((future, "test_not_open"), (past, "test_closed")):
        r = await client.post(f"/v1/tests/{test['id']}/attempts", headers=sh)
        assert r.status_code == 403 and r.json()["error"]["code"] == code
        r = await submit(client, test, sh, RIGHT)
        assert r.status_code == 403 and r.json()["error"]["code"] == code
        # Still visible: students can see what is coming, or what they took.
        assert (await client.get(f"/v1/tests/{test['id']}", headers=sh)).status_code == 200


async def test_drafts_cannot_be_taken(client, instructor, student, auth_for):
    test = await new_test(client, auth_for(instructor), published=False)
    assert (await submit(client, test, auth_for(student), RIGHT)).status_code == 404
    r = await client.post(f"/v1/tests/{test['id']}/attempts", headers=auth_for(student))
    assert r.status_code == 404
    r = await submit(client, {**test, "id": 2_000_000_000}, auth_for(student), {})
    assert r.status_code == 404


async def test_shuffled_order_is_fixed_per_attempt(client, instructor, make_user, auth_for):
    qs = [question(f"Q{i}", [f"{i}a", f"{i}b", f"{i}c", f"{i}d"], {i % 4}) for i in range(8)]
    test = await new_test(
        client, auth_for(instructor), questions=qs, shuffle_questions=True, shuffle_options=True
    )
    canonical = [(q["id"], [o["id"] for o in q["options"]]) for q in test["questions"]]

    def order(body):
        return [(q["id"], [o["id"] for o in q["options"]]) for q in body["questions"]]

    orders = []
    for _ in range(2):
        h = auth_for(make_user("student"))
        start = await client.post(f"/v1/tests/{test['id']}/attempts", headers=h)
        assert start.status_code == 201
        mine = order(start.json())
        assert sorted((q, sorted(o)) for q, o in mine) == sorted(canonical)
        # Fixed for the attempt: resuming and reading the test give the same order.
        assert (
            order((await client.post(f"/v1/tests/{test['id']}/attempts", headers=h)).json()) == mine
        )
        assert order((await client.get(f"/v1/tests/{test['id']}", headers=h)).json()) == mine
        # Scoring does not depend on the order: all correct is full marks.
        r = await submit(client, test, h, {i: i % 4 for i in range(8)})
        assert r.json()["score"] == 8
        orders.append(mine)
    # 8 questions of 4 options: the chance that both orders are the authored one is nil.
    assert any(o != canonical for o in orders)


async def test_review_policy_hides_per_question_results(client, instructor, student, auth_for, db):
    h, sh = auth_for(instructor), auth_for(student)
    never = await new_test(client, h, review_policy="never")
    r = await submit(client, never, sh, {0: 0, 1: [0]})
    result = r.json()
    assert result["details"]["review_allowed"] is False
    # Points of 0 or full marks would say which answers were right: both are withheld.
    assert [q["correctness"] for q in result["details"]["questions"]] == [None, None, None]
    assert points(result) == [None, None, None]
    assert [q["max_points"] for q in result["details"]["questions"]] == [2, 3, 1]
    assert result["score"] == 2 and result["details"]["percentage"] == round(100 * 2 / 6, 4)
    mine = (await client.get(f"/v1/submissions/{result['id']}", headers=sh)).json()
    assert points(mine) == [None, None, None] and mine["score"] == 2
    owner_view = (await client.get(f"/v1/submissions/{result['id']}", headers=h)).json()
    assert [q["correctness"] for q in owner_view["details"]["questions"]] == [
        "correct",
        "incorrect",
        "unanswered",
    ]
    assert points(owner_view) == [2, 0, 0]
    closes = datetime.now(UTC) + timedelta(hours=1)
    later = await new_test(client, h, review_policy="after_close", closes_at=closes.isoformat())
    r = await submit(client, later, sh, {0: 0})
    assert r.json()["details"]["review_allowed"] is False
    assert points(r.json()) == [None, None, None] and r.json()["score"] == 2
    url = f"/v1/submissions/{r.json()['id']}"
    before_close = (await client.get(url, headers=sh)).json()
    assert before_close["details"]["review_allowed"] is False
    assert points(before_close) == [None, None, None]

    # Closed, but late submits are still accepted for the 30 s grace period: no review yet,
    # or a classmate's review could help a late submit.
    set_ago(db, m.Exam, later["id"], "closes_at", 1)
    assert (await client.get(url, headers=sh)).json()["details"]["review_allowed"] is False
    set_ago(db, m.Exam, later["id"], "closes_at", 31)
    mine = (await client.get(url, headers=sh)).json()
    assert mine["details"]["review_allowed"] is True
    assert mine["details"]["questions"][0]["correctness"] == "correct"
    assert points(mine) == [2, 0, 0]
    assert "is_correct" not in (await client.get(url, headers=sh)).text


async def test_list_and_read_submissions(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h, attempts_allowed=3)
    alice, bob = make_user("student"), make_user("student")
    ha, hb = auth_for(alice), auth_for(bob)
    first = (await submit(client, test, ha, RIGHT)).json()
    await submit(client, test, ha, {0: 1})
    bobs = (await submit(client, test, hb, {0: 0})).json()
    url = f"/v1/tests/{test['id']}/submissions"
    r = await client.get(url, headers=h)
    assert r.status_code == 200 and r.headers["x-total-count"] == "3"
    rows = r.json()
    assert [(s["username"], s["attempt"], s["score"]) for s in rows] == [
        (alice.username, 1, 6),
        (alice.username, 2, 0),
        (bob.username, 1, 2),
    ]
    assert rows[0]["max_score"] == 6 and rows[0]["source"] == "api"
    assert rows[0]["submitted_at"] and rows[0]["previous_score"] is None
    r = await client.get(url, params={"user_id": bob.id}, headers=h)
    assert [s["id"] for s in r.json()] == [bobs["id"]]
    r = await client.get(url, headers=hb)
    assert [s["id"] for s in r.json()] == [bobs["id"]]
    r = await client.get(url, params={"limit": 1, "offset": 1}, headers=ha)
    assert r.headers["x-total-count"] == "2" and r.json()[0]["attempt"] == 2
    one = await client.get(f"/v1/submissions/{first['id']}", headers=ha)
    assert one.status_code == 200
    body = one.json()
    assert body["answers"] == {
        qid(test, 0): [option(test, 0, 0)],
        qid(test, 1): sorted([option(test, 1, 0), option(test, 1, 1)]),
        qid(test, 2): [option(test, 2, 1)],
    }
    assert body["score"] == 6 and body["key_version"] == 1
    assert (await client.get(f"/v1/submissions/{first['id']}", headers=hb)).status_code == 404
    assert (await client.get(f"/v1/submissions/{first['id']}", headers=h)).status_code == 200
    other = auth_for(make_user("instructor"))
    assert (await client.get(f"/v1/submissions/{first['id']}", headers=other)).status_code == 404
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.get("/v1/submissions/999999", headers=h)).status_code == 404


async def test_statistics_match_hand_computed_values(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    test = await new_test(client, h, attempts_allowed=2)
    url = f"/v1/tests/{test['id']}/stats"
    empty = (await client.get(url, headers=h)).json()
    assert empty["attempts"] == 0 and empty["mean"] is None and empty["sd"] is None
    a, b, c = (auth_for(make_user("student")) for _ in range(3))
    # Item scores (first attempts): A [2, 3, 1] = 6, B [2, 0, 0] = 2, C [0, 3, 1] = 4.
    await submit(client, test, a, RIGHT)
    one = (await client.get(url, headers=h)).json()
    assert one["attempts"] == 1 and one["mean"] == 6 and one["median"] == 6
    assert one["sd"] is None and all(q["discrimination"] is None for q in one["questions"])
    await submit(client, test, b, {0: 0, 1: [0], 2: 0})
    await submit(client, test, c, {0: 1, 1: [0, 1], 2: 1})
    await submit(client, test, a, {})  # a second attempt: not counted
    stats = (await client.get(url, headers=h)).json()
    assert stats["attempts"] == 3 and stats["max_score"] == 6
    # mean (6 + 2 + 4) / 3 = 4; median 4; SD sqrt((4 + 4 + 0) / 2) = 2.
    assert stats["mean"] == pytest.approx(4) and stats["median"] == pytest.approx(4)
    assert stats["sd"] == pytest.approx(2)
    q0, q1, q2 = stats["questions"]
    # Facility: Q0 (2 + 2 + 0) / 3 / 2 = 2/3; Q1 (3 + 0 + 3) / 3 / 3 = 2/3; Q2 2/3 / 1.
    for q in (q0, q1, q2):
        assert q["facility"] == pytest.approx(2 / 3)
    # Discrimination, item vs rest of test:
    #   Q0 item [2, 2, 0], rest [4, 0, 4]: dx [2/3, 2/3, -4/3], dy [4/3, -8/3, 4/3],
    #      sum dx.dy = -24/9, |dx|^2 = 24/9, |dy|^2 = 96/9 -> r = -24 / 48 = -0.5
    #   Q1 item [3, 0, 3], rest [3, 2, 1]: dx [1, -2, 1], dy [1, 0, -1] -> r = 0
    #   Q2 item [1, 0, 1], rest [5, 2, 3]: sum dx.dy = 12/9, |dx|^2 = 6/9, |dy|^2 = 42/9
    #      -> r = 12 / sqrt(252) = 0.7559
    assert q0["discrimination"] == pytest.approx(-0.5)
    assert q1["discrimination"] == pytest.approx(0, abs=1e-12)
    assert q2["discrimination"] == pytest.approx(12 / 252**0.5)
    assert [q["question_id"] for q in stats["questions"]] == [q["id"] for q in test["questions"]]
    assert stats["needs_regrade"] is False
