from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import SecurityScopes
from starlette.requests import ClientDisconnect

from api.deps import (
    MAX_ID,
    DbSession,
    PageDep,
    Principal,
    ResourcesDep,
    SettingsDep,
    get_principal,
    oauth2_scheme,
    scoped,
)
from api.errors import error_responses
from api.multipart import multipart_body, stream_upload
from api.schemas.files import FileOut, ScanStatus
from api.services import files as service
from common import files as files_common
from common.errors import BadRequest
from common.models import StoredFile
from common.storage import Storage

router = APIRouter(prefix="/files", tags=["files"])
ERRORS = error_responses(401, 403, 404)

FilenamePath = Annotated[
    str,
    Path(
        pattern=files_common.KEY_PATTERN,
        max_length=32,
        description="The server-generated `filename` returned by the upload",
    ),
]
TestIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Test id")]

UPLOAD_BODY = multipart_body(
    "file",
    "The file",
    {"test_id": {"type": "integer", "description": "Attach the file to this test's context"}},
)
DOWNLOAD_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, with its stored content type and "
        "`Content-Disposition: attachment`.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def get_file_storage(settings: SettingsDep) -> Storage:
    # A sync dependency (run in the threadpool): the first call builds the backend.
    return files_common.get_storage(settings)


StorageDep = Annotated[Storage, Depends(get_file_storage)]


@dataclass(frozen=True)
class DownloadAccess:
    principal: Principal | None  # None: a signed link, checked by the service
    expires: str
    signature: str


async def bearer_or_signed_link(
    request: Request,
    session: DbSession,
    resources: ResourcesDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    expires: Annotated[
        str | None, Query(max_length=20, description="Signed link: expiry (unix seconds)")
    ] = None,
    signature: Annotated[
        str | None, Query(max_length=200, description="Signed link: signature")
    ] = None,
) -> DownloadAccess:
    """A signed link needs no token; without one, the usual bearer check (scope files:own)."""
    if expires is None and signature is None:
        principal = await get_principal(
            SecurityScopes(["files:own"]), request, session, resources, token
        )
        return DownloadAccess(principal, "", "")
    return DownloadAccess(None, expires or "", signature or "")


def file_out(row: StoredFile, link: service.FileLink) -> FileOut:
    return FileOut(
        filename=row.key,
        url=link.url,
        url_expires_at=link.expires_at,
        original_name=row.original_name,
        size=row.size,
        content_type=row.content_type,
        sha256=row.sha256,
        scan_status=row.scan_status,
        scan_reason=row.scan_reason,
        virus_scan=row.virus_scan,
        scanned_at=row.scanned_at,
        scan_task_id=row.scan_job_id,
        owner_id=row.owner_id,
        test_id=row.test_id,
        created_at=row.created_at,
    )


@router.post(
    "/upload",
    summary="Upload a file",
    description="Multipart form with the file in the field `file` (and optionally `test_id`, "
    "also accepted as a query parameter, to attach it to a test's context). The body is "
    "streamed to storage: the size limit applies while it arrives (413), the type is decided "
    "from the content's magic bytes against the allowlist, never from the client's "
    "Content-Type (415), an empty file is 422. The file starts `pending`; a scan job "
    "(`scan_task_id`) marks it `clean` or `rejected`, and only clean files can be downloaded.",
    status_code=201,
    response_model=FileOut,
    responses={**ERRORS, **error_responses(413, 415, 422, 503)},
    openapi_extra=UPLOAD_BODY,
)
async def upload_file(
    request: Request,
    response: Response,
    session: DbSession,
    resources: ResourcesDep,
    storage: StorageDep,
    principal: Annotated[Principal, scoped("files:own")],
    test_id: TestIdQuery = None,
) -> FileOut:
    form = stream_upload(
        request,
        field=service.FILE_FIELD,
        text_fields=service.UPLOAD_FIELDS,
        max_bytes=resources.settings.upload_max_bytes,
    )
    try:
        row, link = await service.upload(
            session=session,
            publisher=resources.publisher,
            settings=resources.settings,
            storage=storage,
            principal=principal,
            form=form,
            test_id=test_id,
        )
    except ClientDisconnect:
        raise BadRequest("the client disconnected during the upload", code="disconnected") from None
    response.headers["Location"] = f"/v1/files/{row.key}/info"
    return file_out(row, link)


@router.get(
    "",
    summary="List files",
    description="Your files, newest first (admins: everyone's). With `test_id`: the files "
    "attached to that test, all of them for the test's owner. Each item carries a fresh "
    "signed `url`. Paginated; the total is in `X-Total-Count`.",
    response_model=list[FileOut],
    responses=error_responses(401, 403, 422),
)
async def list_files(
    response: Response,
    session: DbSession,
    page: PageDep,
    storage: StorageDep,
    settings: SettingsDep,
    principal: Annotated[Principal, scoped("files:own")],
    test_id: TestIdQuery = None,
    scan_status: Annotated[ScanStatus | None, Query(description="Only files in this state")] = None,
) -> list[FileOut]:
    rows, total = await service.list_files(
        session=session, principal=principal, page=page, test_id=test_id, scan_status=scan_status
    )
    response.headers["X-Total-Count"] = str(total)
    return [file_out(row, service.link_for(settings, storage, row)) for row in rows]


@router.get(
    "/{filename}/info",
    summary="File metadata",
    description="Size, type, checksum, scan status and a fresh signed `url`. Readable by the "
    "owner, admins and the owner of the file's test; 404 for anyone else.",
    response_model=FileOut,
    responses={**ERRORS, **error_responses(422)},
)
async def file_info(
    filename: FilenamePath,
    session: DbSession,
    storage: StorageDep,
    settings: SettingsDep,
    principal: Annotated[Principal, scoped("files:own")],
) -> FileOut:
    row = await service.get_file(session=session, principal=principal, key=filename)
    return file_out(row, service.link_for(settings, storage, row))


@router.get(
    "/{filename}",
    summary="Download a file",
    description="Streams a clean file as an attachment. With a bearer token: to its owner, "
    "admins, and the owner of the file's test (404 for anyone else). With "
    "`expires` and `signature` from a signed `url`: to anyone holding the link until it "
    "expires (403 when expired or altered). 409 with the scan status while the file is "
    "pending or after it was rejected.",
    response_class=StreamingResponse,
    responses={**DOWNLOAD_DOC, **ERRORS, **error_responses(409, 422)},
)
async def download_file(
    filename: FilenamePath,
    session: DbSession,
    storage: StorageDep,
    settings: SettingsDep,
    access: Annotated[DownloadAccess, Depends(bearer_or_signed_link)],
) -> StreamingResponse:
    if access.principal is None:
        row = await service.get_file_by_link(
            session=session,
            settings=settings,
            key=filename,
            expires=access.expires,
            signature=access.signature,
        )
    else:
        row = await service.get_file(session=session, principal=access.principal, key=filename)
    service.ensure_clean(row)
    chunks = await service.open_blob(storage, row)
    await session.close()  # no connection held while the bytes stream out
    media_type = row.content_type
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return StreamingResponse(
        chunks,
        media_type=media_type,
        headers={
            "Content-Length": str(row.size),
            "Content-Disposition": files_common.content_disposition(row.original_name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
            "ETag": f'"{row.sha256}"',
        },
    )


@router.delete(
    "/{filename}",
    summary="Delete a file",
    description="The owner or an admin deletes the file and its stored bytes; 404 for anyone else.",
    status_code=204,
    responses={**ERRORS, **error_responses(422)},
)
async def delete_file(
    filename: FilenamePath,
    session: DbSession,
    storage: StorageDep,
    principal: Annotated[Principal, scoped("files:own")],
) -> Response:
    await service.delete_file(session=session, storage=storage, principal=principal, key=filename)
    return Response(status_code=204)
