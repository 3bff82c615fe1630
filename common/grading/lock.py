"""The per-test grading lock and the grading jobs it covers.

A regrade or an import rewrites a test's scores from its key: one at a time per test, and the
key does not change under them (a key edit that changes scores is refused while one runs).
Face jobs (check-in, class photo) concern the same test but write attendance only: they neither
take this lock nor wait for it.
"""

from __future__ import annotations

from common.celery_config import TASK_QUEUES
from common.jobs import ExamJobLock

REGRADE_TASK = "grading.regrade"
IMPORT_TASK = "grading.import_submissions"

GRADING_LOCK = ExamJobLock("grading", frozenset({REGRADE_TASK, IMPORT_TASK}))
assert GRADING_LOCK.kinds <= TASK_QUEUES.keys()
