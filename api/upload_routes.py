"""The routes that take an upload (files, face photos, check-in and class photos, CSV imports).

Their bodies are streamed by their own readers (api.multipart), each with its own size limit,
after the route has authenticated and authorised the caller; the general body limit
(api.body_limit) leaves them alone, and they share the upload rate limit (api.ratelimit).
"""

from __future__ import annotations

import re

from starlette.types import Scope

_UPLOAD_PATH = re.compile(
    r"^/v1/(files/upload|users/\d+/faces|tests/\d+/(check-in|attendance/photo|submissions/import))$"
)


def is_upload(scope: Scope) -> bool:
    return scope["method"] == "POST" and _UPLOAD_PATH.match(scope["path"]) is not None
