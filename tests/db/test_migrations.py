"""The migrations and the models describe the same schema, and the chain runs both ways."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from helpers import ROOT
from sqlalchemy import create_engine, inspect

from common import embedded
from common.db import sync_url


@pytest.fixture
def scratch_db(test_env):
    from sqlalchemy.engine import make_url

    server = make_url(test_env["DATABASE_URL"]).render_as_string(hide_password=False)
    name = f"mcq_migrations_{uuid.uuid4().hex[:8]}"
    url = embedded.ensure_database(server, name, drop_first=True)
    yield url
    embedded.drop_database(server, name)


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
    )


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_and_models_match(scratch_db):
    from common.models import Base

    up = alembic(scratch_db, "upgrade", "heads")
    assert up.returncode == 0, up.stderr
    assert tables(scratch_db) == set(Base.metadata.tables)
    # `alembic check` autogenerates against the models and fails on any difference.
    check = alembic(scratch_db, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    down = alembic(scratch_db, "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert tables(scratch_db) == set()

    again = alembic(scratch_db, "upgrade", "heads")
    assert again.returncode == 0, again.stderr
    assert alembic(scratch_db, "check").returncode == 0


def test_single_head():
    heads = alembic("postgresql://unused/unused", "heads")
    assert heads.returncode == 0, heads.stderr
    assert len(heads.stdout.strip().splitlines()) == 1, heads.stdout


def student_at_0007(conn) -> int:
    """A student row written with the schema of revision 0007; its id."""
    from sqlalchemy import text

    sql = "INSERT INTO users (username, role, password_hash) VALUES ('old', 'student', 'x')"
    return conn.scalar(text(sql + " RETURNING id"))


def test_virus_scan_of_existing_files_is_derived_honestly(scratch_db):
    """Before 0011 nothing recorded whether ClamAV ran: only a ClamAV rejection is known."""
    from sqlalchemy import text

    assert alembic(scratch_db, "upgrade", "0007").returncode == 0
    engine = create_engine(sync_url(scratch_db))
    try:
        with engine.begin() as conn:
            user = student_at_0007(conn)
            rows = {
                "a" * 32: ("clean", None),
                "b" * 32: ("rejected", "malware:Eicar-Test-Signature"),
                "c" * 32: ("rejected", "type_mismatch"),
                "d" * 32: ("pending", None),
            }
            for key, (status, reason) in rows.items():
                conn.execute(
                    text(
                        "INSERT INTO stored_files (key, owner_id, original_name, size, "
                        "content_type, sha256, scan_status, scan_reason) VALUES "
                        "(:key, :owner, 'f', 1, 'text/plain', :sha, :status, :reason)"
                    ),
                    {
                        "key": key,
                        "owner": user,
                        "sha": "0" * 64,
                        "status": status,
                        "reason": reason,
                    },
                )
        up = alembic(scratch_db, "upgrade", "heads")
        assert up.returncode == 0, up.stderr
        with engine.connect() as conn:
            found = dict(conn.execute(text("SELECT key, virus_scan FROM stored_files")).all())
    finally:
        engine.dispose()
    assert found == {"a" * 32: None, "b" * 32: "infected", "c" * 32: None, "d" * 32: None}


def test_face_enrollments_made_before_review_stay_approved(scratch_db):
    """0010: enrollments made under the old rule (each counted at once) become approved, with
    no reviewer; enrollments made afterwards start pending."""
    from sqlalchemy import text

    assert alembic(scratch_db, "upgrade", "0007").returncode == 0
    engine = create_engine(sync_url(scratch_db))
    try:
        with engine.begin() as conn:
            user_id = student_at_0007(conn)
            conn.execute(
                text(
                    "INSERT INTO face_enrollments (user_id, encoding, model, face_px, "
                    "detector_score) VALUES (:u, :e, 'm', 200, 2.0)"
                ),
                {"u": user_id, "e": bytes(1024)},
            )
        up = alembic(scratch_db, "upgrade", "heads")
        assert up.returncode == 0, up.stderr
        with engine.begin() as conn:
            rows = conn.execute(
                text("SELECT status, reviewed_by, reviewed_at FROM face_enrollments")
            ).all()
            assert [tuple(r) for r in rows] == [("approved", None, None)]
            conn.execute(
                text(
                    "INSERT INTO face_enrollments (user_id, encoding, model, face_px, "
                    "detector_score) VALUES (:u, :e, 'm', 200, 2.0)"
                ),
                {"u": user_id, "e": bytes(1024)},
            )
            statuses = conn.scalars(text("SELECT status FROM face_enrollments ORDER BY id"))
            assert list(statuses) == ["approved", "pending"]
    finally:
        engine.dispose()
