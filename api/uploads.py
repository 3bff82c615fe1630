"""Reading one uploaded file from a multipart body, with the size limit enforced while streaming.

FastAPI's `UploadFile` parses the whole body (spooling it to disk) before the route runs, so its
size is only known afterwards. Here the body is fed chunk by chunk to python-multipart and the
request is refused with 413 as soon as the file passes the limit: at most `max_bytes` plus one
chunk is ever held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import AppError, PayloadTooLarge, Unprocessable, UnsupportedMediaType

# Room for the multipart framing and a few small text fields next to the file.
ENVELOPE_BYTES = 64 * 1024
MAX_PARTS = 8
MAX_FIELD_BYTES = 1024


class MalformedBody(AppError):
    status_code = 400
    code = "malformed_multipart"


@dataclass(frozen=True)
class Upload:
    filename: str | None
    content_type: str | None
    data: bytes


def multipart_body(field: str, description: str) -> dict[str, Any]:
    """`openapi_extra` documenting a multipart body with one required file field."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [field],
                        "properties": {
                            field: {
                                "type": "string",
                                "format": "binary",
                                "description": description,
                            }
                        },
                    }
                }
            },
        }
    }


def _missing(field: str) -> Unprocessable:
    return Unprocessable(
        f"{field}: a file is required (multipart/form-data, field {field!r})",
        details=[
            {"path": field, "location": "body", "message": "Field required", "type": "missing"}
        ],
    )


class _Collector:
    """python-multipart callbacks: keeps the one file part named `field`, skips the rest."""

    def __init__(self, field: str, max_bytes: int) -> None:
        self.field = field
        self.max_bytes = max_bytes
        self.parts = 0
        self.found: Upload | None = None
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._buffer: bytearray | None = None
        self._other_bytes = 0
        self._is_target = False
        self._filename: str | None = None

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise MalformedBody(f"too many parts: at most {MAX_PARTS}")
        self._headers = {}
        self._is_target = False
        self._buffer = None
        self._other_bytes = 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > MAX_FIELD_BYTES:
            raise MalformedBody("a part header is too long")

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise MalformedBody("a part has no Content-Disposition name")
        if name.decode("latin-1") != self.field:
            return
        if self.found is not None or self._buffer is not None:
            raise Unprocessable(
                f"{self.field}: send exactly one file",
                details=[{"path": self.field, "location": "body", "message": "more than one file"}],
            )
        if b"filename" not in options:
            raise Unprocessable(
                f"{self.field}: must be a file, not a text field",
                details=[{"path": self.field, "location": "body", "message": "not a file"}],
            )
        self._is_target = True
        self._filename = options[b"filename"].decode("utf-8", "replace")[:255]
        self._buffer = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_target and self._buffer is not None:
            if len(self._buffer) + (end - start) > self.max_bytes:
                raise PayloadTooLarge(
                    f"the file is larger than {self.max_bytes:,} bytes",
                    details={"max_bytes": self.max_bytes},
                )
            self._buffer += data[start:end]
        else:
            self._other_bytes += end - start
            if self._other_bytes > MAX_FIELD_BYTES:
                raise MalformedBody(f"fields other than {self.field!r} are limited to 1 KiB")

    def on_part_end(self) -> None:
        if self._is_target and self._buffer is not None:
            content_type = self._headers.get(b"content-type")
            self.found = Upload(
                filename=self._filename,
                content_type=content_type.decode("latin-1")[:100] if content_type else None,
                data=bytes(self._buffer),
            )
            self._buffer = None
        self._is_target = False

    @property
    def receiving(self) -> bool:
        """The file part began but never ended: the body was cut off."""
        return self._buffer is not None

    def callbacks(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in (
                "on_part_begin",
                "on_part_data",
                "on_part_end",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
            )
        }


async def read_file_upload(request: Request, *, field: str, max_bytes: int) -> Upload:
    """The file sent as `field` of a multipart/form-data body, read with a bounded buffer.

    415 for another content type, 413 past `max_bytes` (also at once from Content-Length),
    422 when the field is missing or not a file, 400 for a malformed body.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type:
        raise _missing(field)
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise UnsupportedMediaType(
            f"send the photo as multipart/form-data with the field {field!r}",
            details={"content_type": content_type[:100]},
        )
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise MalformedBody("the multipart boundary is missing")
    limit = max_bytes + ENVELOPE_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the file is larger than {max_bytes:,} bytes", details={"max_bytes": max_bytes}
        )

    collector = _Collector(field, max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(
                    f"the file is larger than {max_bytes:,} bytes",
                    details={"max_bytes": max_bytes},
                )
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise MalformedBody(f"malformed multipart body: {exc}") from exc
    if collector.receiving:
        raise MalformedBody("the multipart body ends in the middle of the file")
    if collector.found is None:
        raise _missing(field)
    return collector.found
