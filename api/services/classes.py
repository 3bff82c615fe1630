"""Classes: an instructor's groups of students. Owners (and admins) manage them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Page, Principal
from api.schemas.classes import ClassCreate, ClassOut, ClassSummary, ClassUpdate
from common.errors import Conflict, NotFound, Unprocessable
from common.models import ClassMember, ExamClass, SchoolClass, User


async def _get(
    session: AsyncSession, principal: Principal, class_id: int, *, lock: bool = False
) -> SchoolClass:
    query = select(SchoolClass).where(SchoolClass.id == class_id)
    if not principal.is_admin:
        query = query.where(SchoolClass.owner_id == principal.id)
    if lock:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise NotFound("class not found", code="class_not_found")
    return found


async def _check_students(session: AsyncSession, ids: Sequence[int], field: str) -> None:
    if not ids:
        return
    students = set(
        (
            await session.scalars(select(User.id).where(User.id.in_(ids), User.role == "student"))
        ).all()
    )
    problems = [
        {"path": f"{field}[{i}]", "message": f"no student with id {uid}"}
        for i, uid in enumerate(ids)
        if uid not in students
    ]
    if problems:
        raise Unprocessable(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)


async def _name_taken(
    session: AsyncSession, owner_id: int, name: str, *, except_id: int = 0
) -> bool:
    found = await session.scalar(
        select(SchoolClass.id).where(
            SchoolClass.owner_id == owner_id, SchoolClass.name == name, SchoolClass.id != except_id
        )
    )
    return found is not None


async def _out(session: AsyncSession, found: SchoolClass) -> ClassOut:
    members = await session.scalars(
        select(ClassMember.user_id)
        .where(ClassMember.class_id == found.id)
        .order_by(ClassMember.user_id)
    )
    tests = await session.scalars(
        select(ExamClass.test_id).where(ExamClass.class_id == found.id).order_by(ExamClass.test_id)
    )
    return ClassOut(
        id=found.id,
        name=found.name,
        owner_id=found.owner_id,
        student_ids=list(members.all()),
        test_ids=list(tests.all()),
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


async def _add_members(session: AsyncSession, class_id: int, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            pg_insert(ClassMember)
            .values([{"class_id": class_id, "user_id": uid} for uid in ids])
            .on_conflict_do_nothing()
        )


async def create_class(
    *, session: AsyncSession, principal: Principal, data: ClassCreate
) -> ClassOut:
    if await _name_taken(session, principal.id, data.name):
        raise Conflict("you already have a class with this name", code="class_name_taken")
    await _check_students(session, data.student_ids, "student_ids")
    found = SchoolClass(owner_id=principal.id, name=data.name)
    session.add(found)
    await session.flush()
    await _add_members(session, found.id, data.student_ids)
    await session.commit()
    return await _out(session, found)


async def list_classes(
    *, session: AsyncSession, principal: Principal, page: Page
) -> tuple[list[ClassSummary], int]:
    query = select(SchoolClass)
    if not principal.is_admin:
        query = query.where(SchoolClass.owner_id == principal.id)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    counts = (
        select(func.count())
        .where(ClassMember.class_id == SchoolClass.id)
        .correlate(SchoolClass)
        .scalar_subquery()
    )
    rows = await session.execute(
        query.add_columns(counts).order_by(SchoolClass.id).limit(page.limit).offset(page.offset)
    )
    out = [
        ClassSummary(
            id=c.id,
            name=c.name,
            owner_id=c.owner_id,
            member_count=count,
            created_at=c.created_at,
        )
        for c, count in rows.all()
    ]
    return out, total or 0


async def get_class(*, session: AsyncSession, principal: Principal, class_id: int) -> ClassOut:
    return await _out(session, await _get(session, principal, class_id))


async def update_class(
    *, session: AsyncSession, principal: Principal, class_id: int, data: ClassUpdate
) -> ClassOut:
    found = await _get(session, principal, class_id, lock=True)
    if data.name is not None and data.name != found.name:
        if await _name_taken(session, found.owner_id, data.name, except_id=found.id):
            raise Conflict("you already have a class with this name", code="class_name_taken")
        found.name = data.name
    if data.student_ids is not None:
        await _check_students(session, data.student_ids, "student_ids")
        await session.execute(delete(ClassMember).where(ClassMember.class_id == found.id))
        await _add_members(session, found.id, data.student_ids)
    if data.add_student_ids:
        await _check_students(session, data.add_student_ids, "add_student_ids")
        await _add_members(session, found.id, data.add_student_ids)
    if data.remove_student_ids:
        await session.execute(
            delete(ClassMember).where(
                ClassMember.class_id == found.id,
                ClassMember.user_id.in_(data.remove_student_ids),
            )
        )
    found.updated_at = datetime.now(UTC)
    await session.commit()
    return await _out(session, found)


async def delete_class(*, session: AsyncSession, principal: Principal, class_id: int) -> None:
    found = await _get(session, principal, class_id, lock=True)
    tests = (
        await session.scalars(select(ExamClass.test_id).where(ExamClass.class_id == found.id))
    ).all()
    if tests:
        # Removing a test's last class would open the test to every student: refuse.
        raise Conflict(
            "the class is assigned to tests; unassign it first",
            code="class_in_use",
            details={"test_ids": sorted(tests)},
        )
    await session.delete(found)
    await session.commit()
