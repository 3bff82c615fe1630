"""Cached reads: ETags, audiences never shared, invalidation on every write (worker's too)."""

from __future__ import annotations

from exam_factories import new_class
from helpers import wait_for_job


def _test_body(class_ids=()):
    return {
        "title": "Cached test",
        "description": "d",
        "class_ids": list(class_ids),
        "questions": [
            {
                "text": f"Q{i}",
                "options": [
                    {"text": "right", "is_correct": True},
                    {"text": "wrong", "is_correct": False},
                ],
            }
            for i in range(3)
        ],
    }


async def _metric(client, name: str, result: str) -> float:
    text = (await client.get("/metrics")).text
    line = f'mcq_cache_events_total{{cache="{name}",result="{result}"}}'
    for row in text.splitlines():
        if row.startswith(line):
            return float(row.split()[-1])
    return 0.0


async def test_etag_and_304(client, instructor, student, auth_for):
    ih, sh = auth_for(instructor), auth_for(student)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    r = await client.get(f"/v1/tests/{test['id']}", headers=sh)
    assert r.status_code == 200
    etag = r.headers["etag"]
    again = await client.get(f"/v1/tests/{test['id']}", headers={**sh, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag


async def test_students_and_owner_never_share_a_view(client, instructor, student, auth_for):
    ih, sh = auth_for(instructor), auth_for(student)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    hits_before = await _metric(client, "test_detail", "hit")
    for _ in range(2):
        as_student = (await client.get(f"/v1/tests/{test['id']}", headers=sh)).text
        as_owner = (await client.get(f"/v1/tests/{test['id']}", headers=ih)).text
        assert "is_correct" not in as_student
        assert "is_correct" in as_owner
    assert await _metric(client, "test_detail", "hit") >= hits_before + 2


async def test_update_invalidates_detail_and_lists(client, instructor, student, auth_for):
    ih, sh = auth_for(instructor), auth_for(student)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    assert (await client.get(f"/v1/tests/{test['id']}", headers=sh)).json()[
        "title"
    ] == "Cached test"
    listed = await client.get("/v1/tests", headers=sh)
    assert [t["title"] for t in listed.json()] == ["Cached test"]
    assert listed.headers["x-total-count"] == "1"
    r = await client.put(f"/v1/tests/{test['id']}", json={"title": "Renamed"}, headers=ih)
    assert r.status_code == 200, r.text
    assert (await client.get(f"/v1/tests/{test['id']}", headers=sh)).json()["title"] == "Renamed"
    assert [t["title"] for t in (await client.get("/v1/tests", headers=sh)).json()] == ["Renamed"]


async def test_class_membership_change_invalidates_student_lists(
    client, instructor, student, make_user, auth_for
):
    ih, sh = auth_for(instructor), auth_for(student)
    other = make_user("student")
    klass = await new_class(client, ih, other)
    await client.post("/v1/tests", json=_test_body([klass["id"]]), headers=ih)
    assert (await client.get("/v1/tests", headers=sh)).json() == []
    r = await client.put(
        f"/v1/classes/{klass['id']}", json={"add_student_ids": [student.id]}, headers=ih
    )
    assert r.status_code == 200, r.text
    assert len((await client.get("/v1/tests", headers=sh)).json()) == 1


async def test_submit_and_worker_regrade_invalidate_statistics(
    client, worker, instructor, make_user, auth_for
):
    ih = auth_for(instructor)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    questions = test["questions"]
    right = {
        str(q["id"]): next(o["id"] for o in q["options"] if o["is_correct"]) for q in questions
    }
    for _ in range(2):
        s = make_user("student")
        r = await client.post(
            f"/v1/tests/{test['id']}/submit", json={"answers": right}, headers=auth_for(s)
        )
        assert r.status_code == 201, r.text
    stats = (await client.get(f"/v1/tests/{test['id']}/stats", headers=ih)).json()
    assert stats["attempts"] == 2 and stats["mean"] == 3
    s = make_user("student")
    await client.post(f"/v1/tests/{test['id']}/submit", json={"answers": {}}, headers=auth_for(s))
    stats = (await client.get(f"/v1/tests/{test['id']}/stats", headers=ih)).json()
    assert stats["attempts"] == 3 and stats["mean"] == 2
    # Flip the key of the first question, regrade in the worker: statistics follow.
    q0 = questions[0]
    flipped = [
        {
            "id": q["id"],
            "text": q["text"],
            "options": [
                {
                    "id": o["id"],
                    "text": o["text"],
                    "is_correct": (not o["is_correct"]) if q is q0 else o["is_correct"],
                }
                for o in q["options"]
            ],
        }
        for q in questions
    ]
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": flipped}, headers=ih)
    assert r.status_code == 200, r.text
    job = (await client.post(f"/v1/tests/{test['id']}/regrade", headers=ih)).json()
    assert (await wait_for_job(client, job["task_id"], ih))["status"] == "succeeded"
    stats = (await client.get(f"/v1/tests/{test['id']}/stats", headers=ih)).json()
    assert stats["questions"][0]["facility"] == 0


async def test_cache_fails_open_when_redis_is_down(
    isolated, instructor, student, auth_for, tmp_path
):
    from common import embedded

    url, proc = embedded.start_redis(tmp_path / "r", persist=False)
    client, _, _ = await isolated(redis_url=url)
    ih, sh = auth_for(instructor), auth_for(student)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    proc.kill()
    proc.wait()
    r = await client.get(f"/v1/tests/{test['id']}", headers=sh)
    assert r.status_code == 200 and "etag" in r.headers
    assert (await client.get("/v1/tests", headers=sh)).status_code == 200
    assert 'mcq_fail_open_total{feature="cache"}' in (await client.get("/metrics")).text


# Every write path invalidates through the session hooks (common.cache_invalidation), cascades
# included: each test reads an entry into the cache, writes, and reads again at once.


def _right_answers(test):
    return {
        str(q["id"]): next(o["id"] for o in q["options"] if o["is_correct"])
        for q in test["questions"]
    }


async def _stats(client, test, headers):
    r = await client.get(f"/v1/tests/{test['id']}/stats", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_deleting_a_student_updates_statistics_at_once(
    client, instructor, admin, make_user, auth_for
):
    ih = auth_for(instructor)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    stayer, leaver = make_user("student"), make_user("student")
    for s, answers in ((stayer, _right_answers(test)), (leaver, {})):
        r = await client.post(
            f"/v1/tests/{test['id']}/submit", json={"answers": answers}, headers=auth_for(s)
        )
        assert r.status_code == 201, r.text
    before = await _stats(client, test, ih)
    assert (before["attempts"], before["mean"]) == (2, 1.5)
    assert await _stats(client, test, ih) == before  # served from the cache
    r = await client.delete(f"/v1/users/{leaver.id}", headers=auth_for(admin))
    assert r.status_code == 204, r.text
    after = await _stats(client, test, ih)
    assert (after["attempts"], after["mean"]) == (1, 3)


async def test_class_membership_changes_show_at_once(
    client, instructor, student, make_user, auth_for
):
    ih, sh = auth_for(instructor), auth_for(student)
    other = make_user("student")
    klass = (
        await client.post(
            "/v1/classes", json={"name": "B", "student_ids": [student.id]}, headers=ih
        )
    ).json()
    test = (await client.post("/v1/tests", json=_test_body([klass["id"]]), headers=ih)).json()
    assert [t["id"] for t in (await client.get("/v1/tests", headers=sh)).json()] == [test["id"]]
    for change, seen in (
        ({"remove_student_ids": [student.id]}, []),
        ({"student_ids": [other.id, student.id]}, [test["id"]]),
        ({"student_ids": [other.id]}, []),
    ):
        r = await client.put(f"/v1/classes/{klass['id']}", json=change, headers=ih)
        assert r.status_code == 200, r.text
        assert [t["id"] for t in (await client.get("/v1/tests", headers=sh)).json()] == seen


async def test_deleting_a_test_updates_lists_at_once(client, instructor, student, auth_for):
    ih, sh = auth_for(instructor), auth_for(student)
    kept = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    gone = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    for h in (ih, sh):
        listed = await client.get("/v1/tests", headers=h)
        assert [t["id"] for t in listed.json()] == [kept["id"], gone["id"]]
    assert (await client.delete(f"/v1/tests/{gone['id']}", headers=ih)).status_code == 204
    for h in (ih, sh):
        listed = await client.get("/v1/tests", headers=h)
        assert [t["id"] for t in listed.json()] == [kept["id"]]
        assert listed.headers["x-total-count"] == "1"
        assert (await client.get(f"/v1/tests/{gone['id']}", headers=h)).status_code == 404


async def test_a_regrade_in_the_worker_updates_the_owner_view_and_statistics(
    client, worker, instructor, student, auth_for
):
    ih = auth_for(instructor)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    r = await client.post(
        f"/v1/tests/{test['id']}/submit",
        json={"answers": _right_answers(test)},
        headers=auth_for(student),
    )
    assert r.status_code == 201, r.text
    assert (await _stats(client, test, ih))["mean"] == 3
    flipped = [
        {
            "id": q["id"],
            "text": q["text"],
            "options": [{**o, "is_correct": not o["is_correct"]} for o in q["options"]],
        }
        for q in test["questions"]
    ]
    for q in flipped:
        for o in q["options"]:
            o.pop("position")
    r = await client.put(f"/v1/tests/{test['id']}", json={"questions": flipped}, headers=ih)
    assert r.status_code == 200, r.text
    view = (await client.get(f"/v1/tests/{test['id']}", headers=ih)).json()
    assert view["needs_regrade"] is True
    assert (await _stats(client, test, ih))["needs_regrade"] is True
    job = (await client.post(f"/v1/tests/{test['id']}/regrade", headers=ih)).json()
    assert (await wait_for_job(client, job["task_id"], ih))["status"] == "succeeded"
    view = (await client.get(f"/v1/tests/{test['id']}", headers=ih)).json()
    assert view["needs_regrade"] is False
    stats = await _stats(client, test, ih)
    assert stats["needs_regrade"] is False and stats["mean"] == 0


async def test_a_csv_import_in_the_worker_updates_statistics(
    client, worker, instructor, make_user, auth_for
):
    ih = auth_for(instructor)
    test = (await client.post("/v1/tests", json=_test_body(), headers=ih)).json()
    first, second = make_user("student"), make_user("student")
    r = await client.post(
        f"/v1/tests/{test['id']}/submit", json={"answers": {}}, headers=auth_for(first)
    )
    assert r.status_code == 201, r.text
    assert (await _stats(client, test, ih))["attempts"] == 1
    right = _right_answers(test)
    header = "username,attempt," + ",".join(right)
    cells = ",".join(str(o) for o in right.values())

    async def run_import(lines):
        files = {"file": ("a.csv", "\n".join([header, *lines]).encode(), "text/csv")}
        r = await client.post(f"/v1/tests/{test['id']}/submissions/import", files=files, headers=ih)
        assert r.status_code == 202, r.text
        job = await wait_for_job(client, r.json()["task_id"], ih)
        assert job["status"] == "succeeded" and job["result"]["failed"] == 0, job
        return job["result"]

    # A new submission...
    assert (await run_import([f"{second.username},1,{cells}"]))["imported"] == 1
    stats = await _stats(client, test, ih)
    assert (stats["attempts"], stats["mean"]) == (2, 1.5)
    # ...and a replaced one (an UPDATE of rows by id).
    assert (await run_import([f"{first.username},1,{cells}"]))["updated"] == 1
    stats = await _stats(client, test, ih)
    assert (stats["attempts"], stats["mean"]) == (2, 3)
