"""Bulk grading through a real worker: regrade, CSV import and export.

The quiz (exam_factories.three_questions), max 6 points:
    Q0: 2 points, single, correct option 0 of 3
    Q1: 3 points, multiple, correct options 0 and 1 of 4
    Q2: 1 point, single, correct option 1 of 2
"""

from __future__ import annotations

import csv
import io
import uuid

from exam_factories import new_class, new_test, option, qid, submit, without_positions
from helpers import wait_for_job
from sqlalchemy import delete, func, select, update

from common import models as m

RIGHT = {0: 0, 1: [0, 1], 2: 1}


async def flip_q2_key(client, test, headers):
    """Q2's correct option becomes option 0 (was 1)."""
    questions = without_positions(test["questions"])
    questions[2]["options"][0]["is_correct"] = True
    questions[2]["options"][1]["is_correct"] = False
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": questions}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def scores(db, test_id):
    db.expire_all()
    rows = db.execute(
        select(m.User.username, m.Submission.score, m.Submission.previous_score)
        .join(m.User, m.User.id == m.Submission.user_id)
        .where(m.Submission.test_id == test_id)
        .order_by(m.User.username, m.Submission.attempt)
    ).all()
    return [tuple(r) for r in rows]


async def regrade(client, test, headers, **params):
    r = await client.post(f"/v1/tests/{test['id']}/regrade", params=params, headers=headers)
    assert r.status_code == 202, r.text
    return await wait_for_job(client, r.json()["task_id"], headers)


async def test_regrade_after_a_key_change(client, worker, instructor, make_user, auth_for, db):
    h = auth_for(instructor)
    test = await new_test(client, h)
    students = {name: make_user("student", username=f"{name}-{uuid.uuid4().hex[:6]}")
                for name in "abcd"}  # fmt: skip
    # Before: a 2 + 3 + 1 = 6; b 2 + 0 + 0 = 2; c 0; d 2 (Q2 unanswered).
    for name, choice in zip("abcd", (RIGHT, {0: 0, 2: 0}, {2: 0}, {0: 0}), strict=True):
        assert (await submit(client, test, auth_for(students[name]), choice)).status_code == 201
    before = scores(db, test["id"])
    assert [s for _, s, _ in before] == [6, 2, 0, 2]
    edited = await flip_q2_key(client, test, h)
    assert edited["needs_regrade"] is True and edited["key_version"] == 2
    # After: a 2 + 3 + 0 = 5; b 2 + 0 + 1 = 3; c 1; d unchanged 2.
    dry = await regrade(client, test, h, dry_run="true")
    assert dry["status"] == "succeeded", dry
    expected = {"graded": 4, "changed": 3, "unchanged": 1, "failed": 0}
    assert {k: dry["result"][k] for k in expected} == expected and dry["result"]["dry_run"]
    assert dry["progress"] == {"done": 4, "total": 4}
    assert scores(db, test["id"]) == before  # a dry run writes nothing
    job = await regrade(client, test, h)
    assert {k: job["result"][k] for k in expected} == expected and not job["result"]["dry_run"]
    after = scores(db, test["id"])
    assert [(s, p) for _, s, p in after] == [(5, 6), (3, 2), (1, 0), (2, None)]
    test_now = (await client.get(f"/v1/tests/{test['id']}", headers=h)).json()
    assert test_now["needs_regrade"] is False
    sub = db.scalars(select(m.Submission).where(m.Submission.user_id == students["a"].id)).one()
    assert sub.key_version == 2
    assert sub.details == [
        [int(qid(test, 0)), 2.0, 2.0, "c"],
        [int(qid(test, 1)), 3.0, 3.0, "c"],
        [int(qid(test, 2)), 0.0, 1.0, "i"],
    ]
    # The student sees the new score and breakdown.
    r = await client.get(f"/v1/submissions/{sub.id}", headers=auth_for(students["a"]))
    assert r.json()["score"] == 5 and r.json()["previous_score"] == 6
    assert [q["correctness"] for q in r.json()["details"]["questions"]] == [
        "correct",
        "correct",
        "incorrect",
    ]
    # Running it again changes nothing and writes nothing.
    stamps = db.execute(select(m.Submission.id, m.Submission.updated_at)).all()
    again = await regrade(client, test, h)
    assert {k: again["result"][k] for k in expected} == {**expected, "changed": 0, "unchanged": 4}
    assert scores(db, test["id"]) == after
    db.expire_all()
    assert db.execute(select(m.Submission.id, m.Submission.updated_at)).all() == stamps


async def test_instant_and_regrade_scores_agree(
    client, worker, instructor, make_user, auth_for, db
):
    """Every scheme: the worker's regrade finds nothing to change in fresh API scores."""
    h = auth_for(instructor)
    choices = [RIGHT, {0: 1, 1: [0, 2], 2: 0}, {1: [0]}, {}, {0: 2, 1: [0, 1, 2, 3]}]
    for settings in (
        {"scoring_scheme": "partial"},
        {"scoring_scheme": "negative", "negative_fraction": 0.5, "unanswered_mark": 0.25},
    ):
        test = await new_test(client, h, **settings)
        for choice in choices:
            assert (await submit(client, test, auth_for(make_user()), choice)).status_code == 201
        job = await regrade(client, test, h)
        assert job["result"]["changed"] == 0 and job["result"]["unchanged"] == len(choices)


async def test_one_grading_job_per_test(client, worker, instructor, student, auth_for, db):
    h = auth_for(instructor)
    test = await new_test(client, h)
    await submit(client, test, auth_for(student), RIGHT)
    running = m.Job(
        id=uuid.uuid4(),
        kind="grading.regrade",
        owner_id=instructor.id,
        status="started",
        params={"test_id": test["id"]},
        subject=f"test:{test['id']}",
    )
    db.add(running)
    db.commit()
    r = await client.post(f"/v1/tests/{test['id']}/regrade", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "grading_in_progress"
    assert r.json()["error"]["details"]["task_id"] == str(running.id)
    files = {"file": ("a.csv", f"username,{qid(test, 0)}\n".encode(), "text/csv")}
    r = await client.post(f"/v1/tests/{test['id']}/submissions/import", files=files, headers=h)
    assert r.status_code == 409
    # The key cannot change under a running job; wording can.
    questions = without_positions(test["questions"])
    questions[0]["points"] = 5
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": questions}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "grading_in_progress"
    r = await client.put(f"/v1/tests/{test['id']}", json={"title": "New title"}, headers=h)
    assert r.status_code == 200
    db.execute(update(m.Job).where(m.Job.id == running.id).values(status="succeeded"))
    db.commit()
    job = await regrade(client, test, h)
    assert job["status"] == "succeeded"


async def test_face_jobs_never_block_grading_but_grading_blocks_grading(
    isolated, client, worker, instructor, student, auth_for, db
):
    """Face jobs share the test's subject but not the grading lock (common.grading.lock):
    a waiting check-in or class photo blocks no regrade, import or key edit; a waiting regrade
    still blocks a second one, an import and a key edit."""
    import numpy as np
    from face_photos import FACES

    from common.faces import encoding_to_bytes

    h = auth_for(instructor)
    test = await new_test(client, h)
    await submit(client, test, auth_for(student), RIGHT)
    db.add(m.FaceEnrollment(user_id=student.id, encoding=encoding_to_bytes(np.zeros(128)),
                            model="dlib_face_recognition_resnet_model_v1", face_px=200,
                            detector_score=2.0, status="approved"))  # fmt: skip
    db.commit()
    # Face jobs through an API whose queue no worker reads: they stay queued.
    parked, _, _ = await isolated()
    image = {"file": ("p.jpg", (FACES / "obama2.jpg").read_bytes(), "image/jpeg")}
    r = await parked.post(
        f"/v1/tests/{test['id']}/check-in", files=image, headers=auth_for(student)
    )
    assert r.status_code == 202, r.text
    check_in = r.json()["task_id"]
    r = await parked.post(f"/v1/tests/{test['id']}/attendance/photo", files=image, headers=h)
    assert r.status_code == 202, r.text
    db.expire_all()
    assert {j.subject for j in db.scalars(select(m.Job))} == {f"test:{test['id']}"}
    job = await regrade(client, test, h)
    assert job["status"] == "succeeded", job
    # In progress rather than queued: still no conflict.
    db.execute(update(m.Job).where(m.Job.id == uuid.UUID(check_in)).values(status="progress"))
    db.commit()
    text = csv_text([["username", qid(test, 0)], [student.username, str(option(test, 0, 0))]])
    r = await start_import(client, test, h, text)
    assert r.status_code == 202, r.text
    assert (await wait_for_job(client, r.json()["task_id"], h))["status"] == "succeeded"
    edited = await flip_q2_key(client, test, h)
    assert edited["key_version"] == 2

    # A regrade waiting in the queue holds the lock.
    r = await parked.post(f"/v1/tests/{test['id']}/regrade", headers=h)
    assert r.status_code == 202, r.text
    waiting = r.json()["task_id"]
    r = await client.post(f"/v1/tests/{test['id']}/regrade", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "grading_in_progress"
    assert r.json()["error"]["details"] == {"task_id": waiting, "kind": "grading.regrade"}
    r = await start_import(client, test, h, text)
    assert r.status_code == 409 and r.json()["error"]["code"] == "grading_in_progress"
    r = await client.put(
        f"/v1/tests/{test['id']}",
        json={"questions": without_positions(test["questions"])},  # the key flipped back
        headers=h,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "grading_in_progress"


async def test_unreadable_stored_answers_count_as_failed(
    client, worker, instructor, make_user, auth_for, db
):
    h = auth_for(instructor)
    test = await new_test(client, h)
    good = (await submit(client, test, auth_for(make_user()), RIGHT)).json()
    bad = (await submit(client, test, auth_for(make_user()), RIGHT)).json()
    db.execute(update(m.Submission).where(m.Submission.id == bad["id"]).values(answers={"x": "y"}))
    db.commit()
    job = await regrade(client, test, h)
    result = job["result"]
    assert (result["graded"], result["failed"], result["changed"]) == (1, 1, 0)
    assert result["errors"][0]["submission_id"] == bad["id"]
    assert good["id"] != bad["id"]


def csv_text(rows):
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


async def start_import(client, test, headers, text, name="answers.csv"):
    files = {"file": (name, text.encode() if isinstance(text, str) else text, "text/csv")}
    return await client.post(
        f"/v1/tests/{test['id']}/submissions/import", files=files, headers=headers
    )


async def test_import_grades_good_rows_and_reports_bad_ones(
    client, worker, instructor, make_user, auth_for, db
):
    h = auth_for(instructor)
    test = await new_test(client, h, attempts_allowed=2)
    ann, ben, cat = (make_user("student", username=f"{n}{uuid.uuid4().hex[:6]}")
                     for n in ("ann", "ben", "cat"))  # fmt: skip
    q0, q1, q2 = (qid(test, i) for i in range(3))
    o = lambda q, i: str(option(test, q, i))  # noqa: E731
    text = csv_text(
        [
            ["username", q0, q1, q2],
            [ann.username, o(0, 0), f"{o(1, 0)}|{o(1, 1)}", o(2, 1)],  # 2: 6 points
            [ben.username.upper(), o(0, 0), "", ""],  # 3: 2 points; usernames ignore case
            ["nobody", o(0, 0), "", ""],  # 4
            [cat.username, "x", "", ""],  # 5
            [cat.username, o(2, 0), "", ""],  # 6: an option of another question
            [cat.username, f"{o(0, 0)}|{o(0, 1)}", "", ""],  # 7: two for a single answer
            [cat.username, o(0, 0)],  # 8: missing cells
            [],  # 9: blank, skipped
            [instructor.username, o(0, 0), "", ""],  # 10
            [ann.username, "", o(1, 2), ""],  # 11: ann's attempt 2, 0 points
            [ann.username, "", "", ""],  # 12: ann has no attempt 3
            [cat.username, "", "", o(2, 1)],  # 13: 1 point
        ]
    )
    r = await start_import(client, test, h, text)
    assert r.status_code == 202, r.text
    job = await wait_for_job(client, r.json()["task_id"], h)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["rows"], result["imported"], result["failed"]) == (11, 4, 7)
    assert [(e["line"], e["code"]) for e in result["errors"]] == [
        (4, "unknown_user"),
        (5, "bad_cell"),
        (6, "foreign_option"),
        (7, "single_answer"),
        (8, "wrong_cell_count"),
        (10, "not_a_student"),
        (12, "attempts_exhausted"),
    ]
    assert all(e["reason"] for e in result["errors"])
    assert "option" in result["errors"][2]["reason"]
    assert scores(db, test["id"]) == [
        (ann.username, 6.0, None),
        (ann.username, 0.0, None),
        (ben.username, 2.0, None),
        (cat.username, 1.0, None),
    ]
    sources = db.scalars(select(m.Submission.source)).all()
    assert set(sources) == {"import"}
    # The upload is not kept once imported.
    assert db.scalar(select(func.count()).select_from(m.SubmissionImport)) == 0


async def test_export_then_import_reproduces_scores(
    client, worker, instructor, make_user, auth_for, db
):
    h = auth_for(instructor)
    test = await new_test(client, h, attempts_allowed=2, scoring_scheme="partial")
    choices = [RIGHT, {0: 1, 1: [0], 2: 1}, {1: [0, 2]}, {}]
    for i, choice in enumerate(choices):
        student = auth_for(make_user("student", username=f"s{i}-{uuid.uuid4().hex[:6]}"))
        assert (await submit(client, test, student, choice)).status_code == 201
        if i == 0:
            assert (await submit(client, test, student, {0: 0})).status_code == 201
    original = scores(db, test["id"])
    r = await client.get(f"/v1/tests/{test['id']}/results.csv", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    q0, q1, q2 = (qid(test, i) for i in range(3))
    assert rows[0] == ["username", "attempt", "score", "max_score", "submitted_at", q0, q1, q2]
    assert len(rows) == 6
    first = rows[1]
    assert first[1:4] == ["1", "6.0", "6.0"]
    ids = sorted([option(test, 1, 0), option(test, 1, 1)])
    assert first[5:] == [str(option(test, 0, 0)), f"{ids[0]}|{ids[1]}", str(option(test, 2, 1))]
    # Importing the export as it is: every row names an existing attempt with the same answers.
    r = await start_import(client, test, h, r.text, name="export.csv")
    job = await wait_for_job(client, r.json()["task_id"], h)
    assert job["status"] == "succeeded", job
    assert {k: job["result"][k] for k in ("imported", "updated", "unchanged", "failed")} == {
        "imported": 0,
        "updated": 0,
        "unchanged": 5,
        "failed": 0,
    }
    # Into an empty test: the same submissions, the same scores.
    db.execute(delete(m.Attempt).where(m.Attempt.test_id == test["id"]))
    db.commit()
    assert scores(db, test["id"]) == []
    r = await start_import(client, test, h, csv_text(rows))
    job = await wait_for_job(client, r.json()["task_id"], h)
    assert job["result"]["imported"] == 5 and job["result"]["failed"] == 0
    assert scores(db, test["id"]) == original


async def test_import_replaces_a_given_attempt(client, worker, instructor, student, auth_for, db):
    h = auth_for(instructor)
    test = await new_test(client, h)
    await submit(client, test, auth_for(student), RIGHT)
    q0 = qid(test, 0)
    text = csv_text([["username", "attempt", q0], [student.username, "1", str(option(test, 0, 1))]])
    job = await wait_for_job(
        client, (await start_import(client, test, h, text)).json()["task_id"], h
    )
    assert job["result"]["updated"] == 1
    # Q0 wrong now, Q1 and Q2 unanswered: 0 points; the previous score is kept.
    assert scores(db, test["id"]) == [(student.username, 0.0, 6.0)]


async def test_import_respects_class_assignment(
    client, worker, instructor, make_user, auth_for, db
):
    h = auth_for(instructor)
    member, outsider = make_user("student"), make_user("student")
    group = await new_class(client, h, member)
    test = await new_test(client, h, class_ids=[group["id"]])
    o = str(option(test, 0, 0))
    text = csv_text([["username", qid(test, 0)], [member.username, o], [outsider.username, o]])
    job = await wait_for_job(
        client, (await start_import(client, test, h, text)).json()["task_id"], h
    )
    assert job["result"]["imported"] == 1
    assert [(e["line"], e["code"]) for e in job["result"]["errors"]] == [(3, "not_assigned")]


async def test_import_refuses_bad_files_at_once(client, instructor, auth_for, isolated, db):
    h = auth_for(instructor)
    test = await new_test(client, h)
    q0 = qid(test, 0)
    cases = [
        (f"user,{q0}\nx,1\n", "username"),
        ("username,999999\nx,1\n", "999999"),
        ("username,abc\n", "abc"),
        (f"username,{q0},{q0}\n", q0),
        ("", "empty"),
        ("username\nx\n", "question"),
        (b"username,\xff\xfe\n", "UTF-8"),
        (f"username,{q0}\nx,\x00\n", "NUL"),
    ]
    for text, hint in cases:
        r = await start_import(client, test, h, text)
        assert r.status_code == 422, (text, r.text)
        assert r.json()["error"]["code"] == "invalid_csv"
        assert hint.lower() in r.text.lower(), (hint, r.text)
    r = await client.post(f"/v1/tests/{test['id']}/submissions/import", headers=h)
    assert r.status_code == 422
    r = await client.post(
        f"/v1/tests/{test['id']}/submissions/import", json={"file": "x"}, headers=h
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "multipart_required"
    assert db.scalar(select(func.count()).select_from(m.SubmissionImport)) == 0
    assert db.scalar(select(func.count()).select_from(m.Job)) == 0
    # Over the size limit: 413.
    small, _, _ = await isolated(submission_import_max_bytes=1024)
    big = f"username,{q0}\n" + "someone,1\n" * 200
    r = await start_import(small, test, h, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


async def test_regrade_in_several_processes_gives_the_same_result(
    isolated, instructor, make_user, auth_for, db
):
    """REGRADE_PROCESSES=3: shards scored in forked processes, written in one transaction."""
    client, _, start_worker = await isolated()
    worker = start_worker(queues="default", concurrency=1, REGRADE_PROCESSES="3")
    h = auth_for(instructor)
    test = await new_test(client, h, scoring_scheme="partial")
    choices = [RIGHT, {0: 0, 2: 0}, {2: 0}, {0: 0}, {1: [0, 2], 2: 1}, {1: [1]}, {}]
    for choice in choices:
        assert (await submit(client, test, auth_for(make_user()), choice)).status_code == 201
    await flip_q2_key(client, test, h)
    job = await regrade(client, test, h)
    assert job["result"]["processes"] == 3, job
    # Q2 flipped: every submission that answered Q2 changes (4 of them); the rest do not.
    assert (job["result"]["changed"], job["result"]["unchanged"]) == (4, 3)
    again = await regrade(client, test, h)
    assert (again["result"]["changed"], again["result"]["unchanged"]) == (0, 7)
    db.expire_all()
    # The same scores as the API computes for the new key, submitted afresh.
    fresh = await new_test(client, h, scoring_scheme="partial")
    await flip_q2_key(client, fresh, h)
    expected = []
    for choice in choices:
        r = await submit(client, fresh, auth_for(make_user()), choice)
        expected.append(r.json()["score"])
    got = db.scalars(
        select(m.Submission.score)
        .where(m.Submission.test_id == test["id"])
        .order_by(m.Submission.id)
    ).all()
    assert list(got) == expected
    worker.stop()
