"""Classes: owned by their instructor; they decide who sees and takes a test."""

from __future__ import annotations

from exam_factories import new_class, new_test, submit


async def test_class_crud(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    a, b, c = make_user("student"), make_user("student"), make_user("student")
    r = await client.post(
        "/v1/classes", json={"name": "1A", "student_ids": [b.id, a.id]}, headers=h
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["name"] == "1A" and created["owner_id"] == instructor.id
    assert created["student_ids"] == sorted([a.id, b.id]) and created["test_ids"] == []
    url = f"/v1/classes/{created['id']}"
    assert (await client.get(url, headers=h)).json() == created
    r = await client.put(
        url,
        json={"name": "1B", "add_student_ids": [c.id, a.id], "remove_student_ids": [b.id]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "1B" and r.json()["student_ids"] == sorted([a.id, c.id])
    r = await client.put(url, json={"student_ids": [b.id]}, headers=h)
    assert r.json()["student_ids"] == [b.id]
    await client.post("/v1/classes", json={"name": "2A"}, headers=h)
    r = await client.get("/v1/classes", headers=h)
    assert r.headers["x-total-count"] == "2"
    assert [(c["name"], c["member_count"]) for c in r.json()] == [("1B", 1), ("2A", 0)]
    assert (await client.delete(url, headers=h)).status_code == 204
    assert (await client.get(url, headers=h)).status_code == 404


async def test_class_validation_and_conflicts(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    student, teacher = make_user("student"), make_user("instructor")
    cases = [
        ({"name": "X", "student_ids": [student.id, teacher.id]}, "student_ids[1]"),
        ({"name": "X", "student_ids": [student.id, 999_999]}, "student_ids[1]"),
        ({"name": "X", "student_ids": [student.id, student.id]}, "student_ids"),
        ({"name": "X", "student_ids": [2**40]}, "student_ids[0]"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({}, "name"),
        ({"name": "X", "members": []}, "members"),
    ]
    for body, path in cases:
        r = await client.post("/v1/classes", json=body, headers=h)
        assert r.status_code == 422, (body, r.text)
        assert path in [d["path"] for d in r.json()["error"]["details"]], r.json()
    assert (await client.post("/v1/classes", json={"name": "X"}, headers=h)).status_code == 201
    r = await client.post("/v1/classes", json={"name": "X"}, headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "class_name_taken"
    # Another instructor may use the same name; they cannot see or touch mine.
    other = auth_for(make_user("instructor"))
    r = await client.post("/v1/classes", json={"name": "X"}, headers=other)
    assert r.status_code == 201
    mine = (await client.get("/v1/classes", headers=h)).json()[0]["id"]
    assert (await client.get(f"/v1/classes/{mine}", headers=other)).status_code == 404
    assert (await client.put(f"/v1/classes/{mine}", json={}, headers=other)).status_code == 404
    assert (await client.delete(f"/v1/classes/{mine}", headers=other)).status_code == 404
    r = await client.put(f"/v1/classes/{mine}", json={"name": None}, headers=h)
    assert r.status_code == 422
    r = await client.put(f"/v1/classes/{mine}", json={"add_student_ids": [teacher.id]}, headers=h)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "add_student_ids[0]"


async def test_assigned_test_is_for_members_only(client, instructor, make_user, auth_for):
    h = auth_for(instructor)
    member, outsider = make_user("student"), make_user("student")
    group = await new_class(client, h, member)
    test = await new_test(client, h, class_ids=[group["id"]])
    assert test["class_ids"] == [group["id"]]
    assert (await client.get(f"/v1/classes/{group['id']}", headers=h)).json()["test_ids"] == [
        test["id"]
    ]
    r = await submit(client, test, auth_for(outsider), {0: 0})
    assert r.status_code == 404
    r = await client.post(f"/v1/tests/{test['id']}/attempts", headers=auth_for(outsider))
    assert r.status_code == 404
    assert (await submit(client, test, auth_for(member), {0: 0})).status_code == 201
    # Membership decides, live: the outsider joins and may take it.
    await client.put(
        f"/v1/classes/{group['id']}", json={"add_student_ids": [outsider.id]}, headers=h
    )
    assert (await submit(client, test, auth_for(outsider), {0: 0})).status_code == 201
    # A class in use cannot be deleted (the test would open to everyone).
    r = await client.delete(f"/v1/classes/{group['id']}", headers=h)
    assert r.status_code == 409 and r.json()["error"]["details"]["test_ids"] == [test["id"]]
    r = await client.put(f"/v1/tests/{test['id']}", json={"class_ids": []}, headers=h)
    assert r.status_code == 200 and r.json()["class_ids"] == []
    assert (await client.delete(f"/v1/classes/{group['id']}", headers=h)).status_code == 204


async def test_tests_take_only_their_owners_classes(client, instructor, make_user, auth_for):
    other = auth_for(make_user("instructor"))
    theirs = (await client.post("/v1/classes", json={"name": "T"}, headers=other)).json()
    r = await client.post(
        "/v1/tests",
        json={
            "title": "t",
            "questions": [
                {"text": "q", "options": [{"text": "a", "is_correct": True}, {"text": "b"}]}
            ],
            "class_ids": [theirs["id"]],
        },
        headers=auth_for(instructor),
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "class_ids[0]"


async def test_admin_manages_any_class(client, instructor, admin, student, auth_for):
    r = await client.post(
        "/v1/classes", json={"name": "C", "student_ids": [student.id]}, headers=auth_for(instructor)
    )
    class_id = r.json()["id"]
    ha = auth_for(admin)
    assert (await client.get("/v1/classes", headers=ha)).headers["x-total-count"] == "1"
    r = await client.put(f"/v1/classes/{class_id}", json={"student_ids": []}, headers=ha)
    assert r.status_code == 200 and r.json()["student_ids"] == []
    assert (await client.delete(f"/v1/classes/{class_id}", headers=ha)).status_code == 204
    assert (await client.get("/v1/classes", headers=auth_for(student))).status_code == 403


async def test_a_nul_character_is_a_422_naming_the_field(client, instructor, auth_for):
    # PostgreSQL text cannot hold NUL: every request body refuses it (api.schemas.common).
    h = auth_for(instructor)
    r = await client.post("/v1/classes", json={"name": "A\x00B"}, headers=h)
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == ["name"]
    r = await client.post(
        "/v1/tests",
        json={"title": "T", "questions": [{"text": "Q\x00", "options": [{"text": "a"}]}]},
        headers=h,
    )
    assert r.status_code == 422, r.text
    assert "questions" in r.json()["error"]["details"][0]["path"]
