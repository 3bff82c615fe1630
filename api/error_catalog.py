"""The `error.code` values particular to each operation, by operation id and status.

Only what a route adds to the generic codes (401 `invalid_token`, 422 `validation_error`, 429
`rate_limited`, 503 `database_unavailable`, …) that api/openapi.py documents from the route's
shape. The schema lists both in each operation's description and error responses, so a client
developer can switch on `error.code`. When a service raises a new code, add it here;
tests/api/test_openapi_contract.py refuses ids that name no operation.
"""

from __future__ import annotations

Codes = dict[int, tuple[str, ...]]

# One vocabulary for every upload route (api/multipart.py).
UPLOAD: Codes = {
    400: ("malformed_multipart",),
    413: ("payload_too_large",),
    415: ("multipart_required",),
}
TEST_MISSING: Codes = {404: ("test_not_found",)}
GRADING: Codes = {409: ("grading_in_progress",)}
FACE_REVIEW: Codes = {
    403: ("not_your_student",),
    404: ("face_not_found",),
    409: ("already_decided",),
}

ROUTE_ERRORS: dict[str, Codes] = {
    "auth-login": {
        401: ("invalid_credentials",),
        429: ("rate_limited",),
        503: ("login_busy",),
    },
    "auth-refresh": {401: ("invalid_token", "token_reused")},
    "users-create_user": {409: ("username_taken", "conflict")},
    "users-update_user": {
        403: ("role_change_forbidden",),
        409: ("username_taken", "conflict", "last_admin"),
        422: ("current_password_invalid",),
    },
    "users-delete_user": {
        409: ("cannot_delete_self", "user_owns_tests", "last_admin", "class_name_taken"),
        422: (
            "transfer_target_not_found",
            "transfer_target_is_user",
            "transfer_target_not_instructor",
            "transfer_target_inactive",
        ),
    },
    "tasks-cancel_task": {409: ("task_finished",)},
    "attendance-update_attendance": {422: ("immutable_field",)},
    "attendance-create_attendance": {
        409: ("attendance_exists",),
        422: ("test_not_found", "student_not_found", "student_not_eligible"),
    },
    "faces-enroll_face": {
        **UPLOAD,
        403: ("not_your_student",),
        409: ("too_many_enrollments",),
        422: ("not_a_student",),
    },
    "faces-list_faces": {403: ("not_your_student",)},
    "faces-approve_face": FACE_REVIEW,
    "faces-reject_face": FACE_REVIEW,
    "faces-face_photo": {403: ("not_your_student",), 404: ("face_not_found", "photo_not_found")},
    "faces-check_in": {
        **UPLOAD,
        **TEST_MISSING,
        409: ("not_enrolled", "test_not_open"),
    },
    "faces-class_photo": {**UPLOAD, **TEST_MISSING},
    "files-upload_file": {
        **UPLOAD,
        400: ("malformed_multipart", "disconnected"),
        415: ("multipart_required", "file_type_not_allowed"),
        422: ("empty_file", "unknown_test", "unknown_field"),
    },
    "files-download_file": {
        403: ("link_expired", "invalid_signature"),
        409: ("file_pending", "file_rejected"),
    },
    "tests-read_test": TEST_MISSING,
    "tests-update_test": {**TEST_MISSING, **GRADING},
    "tests-delete_test": TEST_MISSING,
    "classes-get_class": {404: ("class_not_found",)},
    "classes-update_class": {404: ("class_not_found",), 409: ("class_name_taken",)},
    "classes-delete_class": {404: ("class_not_found",), 409: ("class_in_use",)},
    "classes-create_class": {409: ("class_name_taken",)},
    "submissions-start_attempt": {
        **TEST_MISSING,
        403: ("test_not_open", "test_closed"),
        409: ("attempts_exhausted",),
    },
    "submissions-submit": {
        **TEST_MISSING,
        403: ("test_not_open", "test_closed"),
        409: ("attempts_exhausted", "attempt_expired", "no_open_attempt", "already_submitted"),
    },
    "submissions-list_submissions": TEST_MISSING,
    "submissions-get_submission": {404: ("submission_not_found",)},
    "submissions-regrade": {**TEST_MISSING, **GRADING},
    "submissions-import_submissions": {
        **UPLOAD,
        **TEST_MISSING,
        **GRADING,
        422: ("invalid_csv",),
    },
    "submissions-export_results": TEST_MISSING,
    "submissions-stats": TEST_MISSING,
    "health-metrics": {404: ("not_found",)},
}
