"""stored_files.virus_scan: what ClamAV said, apart from the overall verdict

`scan_status` says whether a file may be served; `virus_scan` says whether ClamAV looked at it:
`clean`, `infected`, `skipped` (no scanner configured, or VIRUS_SCAN=off), or NULL (not scanned
yet, or rejected by the type and image checks before ClamAV saw it).

Existing rows, derived honestly: a rejection whose reason is a ClamAV signature (`malware:...`)
becomes `infected`; every other row stays NULL, because nothing recorded whether CLAMD_URL was
set when it was scanned: "clean" there may mean "ClamAV found nothing" or "ClamAV never ran".

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Copied, not imported: a migration keeps the schema of its own time.
VIRUS_SCAN_CHECK = (
    "virus_scan IS NULL OR (virus_scan IN ('clean', 'infected', 'skipped') "
    "AND scan_status <> 'pending' AND (virus_scan <> 'infected' OR scan_status = 'rejected'))"
)


def upgrade() -> None:
    op.add_column("stored_files", sa.Column("virus_scan", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE stored_files SET virus_scan = 'infected' "
        "WHERE scan_status = 'rejected' AND scan_reason LIKE 'malware:%'"
    )
    op.create_check_constraint("virus_scan", "stored_files", VIRUS_SCAN_CHECK)


def downgrade() -> None:
    op.drop_constraint("virus_scan", "stored_files", type_="check")
    op.drop_column("stored_files", "virus_scan")
