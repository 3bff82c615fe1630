"""The cache scopes that follow grades (see common.cache for how scopes version entries).

What is computed from a test's grades (its statistics) goes stale when any input of grading
changes: a submission written or deleted, the key (questions, options), or the test's grading
settings. common.cache_invalidation maps written rows to test ids and asks here which scopes
that makes stale; the statistics read asks here which scopes its entry is keyed by.
"""

from __future__ import annotations

from collections.abc import Iterable

from common.cache import test_scope


def grades_scope(test_id: int) -> str:
    """What is computed from the test's grades."""
    return f"grades:{test_id}"


def stale_when_grades_change(test_ids: Iterable[int]) -> set[str]:
    """The scopes a change to the grading inputs of these tests makes stale."""
    return {grades_scope(i) for i in test_ids}


def statistics_scopes(test_id: int) -> tuple[str, ...]:
    """The scopes of the statistics entry: the test itself (its questions, needs_regrade) and
    its grades."""
    return (test_scope(test_id), grades_scope(test_id))
