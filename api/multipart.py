"""Incremental multipart/form-data parsing over an ASGI request stream.

FastAPI's `UploadFile` reads the whole body (spooling it to disk) before the route runs, so a
size limit would be checked only after the bytes arrived. `StreamingForm` feeds the body to
python-multipart's push parser chunk by chunk instead: the file field comes out as a stream of
chunks while the body arrives, limits are enforced as bytes come in, and small text fields
are collected on the way. Memory stays bounded by one network chunk.

The one upload reader of the API: routes read their upload here, after the service has said
the caller may upload (api.upload_routes), and hand the result to the service; services never
read a request. `read_upload` is the small-file case (face photos, CSV imports): the one file
part read into memory, refused with 413 as soon as it passes its limit, other small fields
skipped. `stream_upload` is the large-file case (api.services.files streams it to storage).

One error vocabulary for every upload: 400 `malformed_multipart` for a body that is not
well-formed multipart (framing, boundary, truncation, part headers), 413 `payload_too_large`
past a limit (`details.max_bytes`), 415 for another content type, 422 for well-formed forms
with a missing, unknown or invalid field.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from common.errors import BadRequest, TooLarge, Unprocessable, UnsupportedType
from common.storage import TooLarge as StorageTooLarge

MAX_HEADER_BYTES = 8 * 1024  # all headers of one part together


class MalformedMultipart(BadRequest):
    """A malformed, truncated or oddly framed multipart body. 400, not 422: the body cannot be
    parsed as the media type it claims (a syntax error of the request, RFC 9110 15.5.1); 422 is
    for a well-formed form whose fields are wrong."""

    code = "malformed_multipart"


def too_large(max_bytes: int) -> TooLarge:
    """413 for an upload past its limit, the same for every upload route."""
    return TooLarge(
        f"the file is larger than {max_bytes:,} bytes", details={"max_bytes": max_bytes}
    )


@dataclass(frozen=True)
class FilePart:
    field: str
    filename: str | None  # as sent (UTF-8 decoded); sanitize before use
    content_type: str | None  # as claimed by the client; never trusted for the type decision


def boundary_of(content_type: str | None) -> bytes:
    """The boundary of a multipart/form-data Content-Type; 415 for anything else."""
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise UnsupportedType(
            "send the file as multipart/form-data",
            code="multipart_required",
            details={"content_type": (content_type or "")[:100] or None},
        )
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise MalformedMultipart("multipart/form-data without a valid boundary")
    return boundary


def _field_error(field: str, message: str, code: str = "validation_error") -> Unprocessable:
    return Unprocessable(
        f"{field}: {message}", code=code, details=[{"path": field, "message": message}]
    )


class StreamingForm:
    """One file field streamed out, plus small text fields, from a multipart body.

    Use `await read_head(n)` to get the first bytes of the file (to sniff its type before
    storing anything), then iterate `file_chunks()`, which yields the rest of the file and
    reads the body to its end, so that text fields sent after the file are collected too.
    Raises common.storage.TooLarge past `max_file_size` (file) or `max_body_size` (whole body),
    MalformedMultipart for a malformed or truncated body, Unprocessable for unexpected fields.

    A field not named in `text_fields` is refused (422 `unknown_field`), unless
    `other_field_max_bytes` is set: such fields are then read and dropped, each up to that many
    bytes (MalformedMultipart past it). With `require_filename`, the file field must be sent as a
    file (a `filename` parameter, possibly empty), not as a text field.
    """

    def __init__(
        self,
        body: AsyncIterator[bytes],
        content_type: str | None,
        *,
        file_field: str,
        text_fields: dict[str, int],  # name -> maximum length in bytes
        max_file_size: int,
        max_body_size: int,
        max_parts: int = 8,
        require_filename: bool = False,
        other_field_max_bytes: int | None = None,
    ) -> None:
        self._body = body
        self._parser = MultipartParser(
            boundary_of(content_type),
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )
        self.file_field = file_field
        self.text_fields = text_fields
        self.max_file_size = max_file_size
        self.max_body_size = max_body_size
        self.max_parts = max_parts
        self.require_filename = require_filename
        self.other_field_max_bytes = other_field_max_bytes
        self.fields: dict[str, str] = {}
        self.file: FilePart | None = None
        self.file_size = 0
        self.body_size = 0
        self._pending: deque[bytes] = deque()
        self._parts = 0
        self._headers: dict[str, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._header_bytes = 0
        self._current: str | None = None  # "file", a text field's name, or None
        self._text = bytearray()
        self._skipping = False  # inside a field that is read and dropped
        self._skipped = 0
        self._file_done = False
        self._body_done = False
        self._ended = False

    # python-multipart callbacks -------------------------------------------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise MalformedMultipart("too many form fields")
        self._headers, self._header_bytes, self._current = {}, 0, None
        self._skipping, self._skipped = False, 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._grow_header(end - start)
        self._header_value += data[start:end]

    def _grow_header(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            raise MalformedMultipart("multipart part headers too large")

    def _on_header_end(self) -> None:
        name = bytes(self._header_name).decode("latin-1").strip().lower()
        self._headers[name] = bytes(self._header_value).strip()
        self._header_name, self._header_value = bytearray(), bytearray()

    def _on_headers_finished(self) -> None:
        # Latin-1 maps bytes to code points one to one, so the raw (UTF-8) bytes survive.
        disposition, params = parse_options_header(
            self._headers.get("content-disposition", b"").decode("latin-1")
        )
        name_b = params.get(b"name")
        if disposition != b"form-data" or name_b is None:
            raise MalformedMultipart(
                "every multipart part needs Content-Disposition: form-data; name=…"
            )
        name = name_b.decode("utf-8", "replace")
        if name == self.file_field:
            if self.file is not None:
                raise _field_error(name, "send exactly one file")
            raw_filename = params.get(b"filename")
            if self.require_filename and raw_filename is None:
                raise _field_error(name, "must be a file, not a text field")
            raw_type = self._headers.get("content-type")
            self.file = FilePart(
                field=name,
                filename=raw_filename.decode("utf-8", "replace") if raw_filename else None,
                content_type=raw_type.decode("latin-1")[:200] if raw_type else None,
            )
            self._current = "file"
        elif name in self.text_fields:
            if name in self.fields:
                raise _field_error(name, "sent twice")
            self._current, self._text = name, bytearray()
        elif self.other_field_max_bytes is not None:
            self._skipping = True
        else:
            raise _field_error(name[:64], "unknown form field", code="unknown_field")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if start == end:
            return
        if self._current == "file":
            self.file_size += end - start
            if self.file_size > self.max_file_size:
                raise StorageTooLarge(self.max_file_size)
            self._pending.append(bytes(data[start:end]))
        elif self._current is not None:
            self._text += data[start:end]
            if len(self._text) > self.text_fields[self._current]:
                raise _field_error(self._current, "too long")
        elif self._skipping:
            self._skipped += end - start
            if (
                self.other_field_max_bytes is not None
                and self._skipped > self.other_field_max_bytes
            ):
                raise MalformedMultipart(
                    f"fields other than {self.file_field!r} are limited to "
                    f"{self.other_field_max_bytes:,} bytes"
                )

    def _on_part_end(self) -> None:
        if self._current == "file":
            self._file_done = True
        elif self._current is not None:
            try:
                self.fields[self._current] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise _field_error(self._current, "not UTF-8 text") from None
        self._current, self._skipping = None, False

    def _on_end(self) -> None:
        self._ended = True

    # Reading ---------------------------------------------------------------------------------

    async def _pump(self) -> None:
        """Feed the next body chunk to the parser (callbacks fill _pending and fields)."""
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._body_done = True
            return
        self.body_size += len(chunk)
        if self.body_size > self.max_body_size:
            raise StorageTooLarge(self.max_body_size)
        if self._ended:
            return  # epilogue after the closing boundary: ignored
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise MalformedMultipart(
                "malformed multipart body", details={"reason": str(exc)}
            ) from None

    async def read_head(self, n: int) -> tuple[bytes, bool]:
        """At least n bytes of the file (fewer if it is shorter), and whether that is all of it.
        422 when the body ends without a file field."""
        head = bytearray()
        while len(head) < n:
            if self._pending:
                head += self._pending.popleft()
            elif self._file_done or self._body_done:
                break
            else:
                await self._pump()
        if self.file is None:
            raise _field_error(self.file_field, "missing: send the file in this form field")
        complete = self._file_done and not self._pending
        if complete or self._body_done:
            self._check_complete()
        return bytes(head), complete

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The rest of the file, then the rest of the body (for fields after the file)."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._body_done:
                break
            await self._pump()
        self._check_complete()

    def _check_complete(self) -> None:
        # Raised while the storage is still consuming the stream, so a truncated upload is
        # discarded rather than stored.
        if self._body_done and not self._ended:
            raise MalformedMultipart("multipart body ended before its closing boundary")


# One small file read into memory -------------------------------------------------------------

# Room for the multipart framing and a few small fields next to the file.
ENVELOPE_BYTES = 64 * 1024
OTHER_FIELD_MAX_BYTES = 1024


@dataclass(frozen=True)
class Upload:
    filename: str  # as sent (UTF-8 decoded, at most 255 characters; may be empty)
    content_type: str | None  # as claimed by the client (at most 100 characters)
    data: bytes


async def read_upload(request: Request, *, field: str, max_bytes: int) -> Upload:
    """The request's small upload (`read_file_bytes`). Routes call it only after the service
    has authorised the upload, so that nothing of the body is read for a refused request."""
    return await read_file_bytes(
        request.stream(),
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        field=field,
        max_bytes=max_bytes,
    )


def stream_upload(
    request: Request, *, field: str, text_fields: dict[str, int], max_bytes: int
) -> StreamingForm:
    """The request's large upload as a StreamingForm (`field` streamed out, small
    `text_fields` collected): 415/400 for a body that is not multipart/form-data and 413 from
    Content-Length at once, before a byte of the body is read."""
    form = StreamingForm(
        request.stream(),
        request.headers.get("content-type"),
        file_field=field,
        text_fields=text_fields,
        max_file_size=max_bytes,
        max_body_size=max_bytes + ENVELOPE_BYTES,
    )
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > form.max_body_size:
        raise too_large(max_bytes)
    return form


def multipart_body(
    field: str, description: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` documenting a multipart body with one required file field (and the
    optional fields in `extra`, name -> JSON schema)."""
    properties = {field: {"type": "string", "format": "binary", "description": description}}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [field],
                        "properties": {**properties, **(extra or {})},
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


async def read_file_bytes(
    body: AsyncIterator[bytes],
    content_type: str | None,
    content_length: str | None,
    *,
    field: str,
    max_bytes: int,
) -> Upload:
    """The file sent as `field` of a multipart/form-data body, read into memory while the body
    streams in: at most `max_bytes` plus one network chunk is ever held.

    Other fields are skipped (each up to 1 KiB). Errors: 415 `multipart_required` for
    another content type; 413 `payload_too_large` past `max_bytes` (at once from
    Content-Length); 422 `validation_error` when the field is missing, not a file or sent
    twice (also without any Content-Type); 400 `malformed_multipart` for a malformed or
    truncated body.
    """
    if not content_type:
        raise _missing(field)
    max_body_size = max_bytes + ENVELOPE_BYTES
    if content_length and content_length.isdigit() and int(content_length) > max_body_size:
        raise too_large(max_bytes)  # refused before reading a byte of the body
    try:
        form = StreamingForm(
            body,
            content_type,
            file_field=field,
            text_fields={},
            max_file_size=max_bytes,
            max_body_size=max_body_size,
            require_filename=True,
            other_field_max_bytes=OTHER_FIELD_MAX_BYTES,
        )
    except UnsupportedType as exc:
        raise UnsupportedType(
            f"send the file as multipart/form-data with the field {field!r}",
            code=exc.code,
            details=exc.details,
        ) from None
    data = bytearray()
    try:
        async for chunk in form.file_chunks():  # the whole body, to its closing boundary
            data += chunk
    except MalformedMultipart:
        if form.body_size == 0:  # nothing sent at all: the file is missing
            raise _missing(field) from None
        raise
    except StorageTooLarge:
        raise too_large(max_bytes) from None
    if form.file is None:
        raise _missing(field)
    return Upload(
        filename=(form.file.filename or "")[:255],
        content_type=form.file.content_type[:100] if form.file.content_type else None,
        data=bytes(data),
    )
