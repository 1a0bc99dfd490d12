"""``/documents``: list what is indexed, upload files, delete a document.

Uploads are saved in ``<docs_root>/uploads/`` and the whole ``docs_root`` is ingested again by
the same incremental ingest as the CLI (see :mod:`api.library` for why and how ``docs_root``
is found). The running server answers from the new index at once, without a restart.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from api.context import ApiContext, get_context
from api.errors import ApiError, error_responses
from api.library import Upload, check_supported, clean_filename

router = APIRouter(prefix="/documents", tags=["documents"])

UPLOAD_RESPONSES = error_responses(
    {
        409: "The folder the index is built from is unknown or does not match the index, or an ingest is running.",
        415: "A file type that is not supported, or a body that is not multipart/form-data.",
        503: "The index is being written by another ingest; try again.",
    }
)
DELETE_RESPONSES = error_responses(
    {
        404: "There is no document with that id.",
        409: "The folder the index is built from is unknown, or the document is the last one.",
        503: "The index is being written by another ingest; try again.",
    }
)

MULTIPART_SLACK = 64 * 1024  # boundaries and part headers on top of the files themselves
MAX_FILES = 100

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["files"],
                }
            }
        },
    }
}


class _BodyTooLarge(Exception):
    pass


def _too_large(size: int, limit_mb: float) -> ApiError:
    return ApiError(
        413,
        f"The upload is {size / 1048576:.1f} MB, over the limit of {limit_mb:g} MB; "
        "send smaller or fewer files (the limit is the max_upload_mb setting).",
        "too_large",
    )


@router.get("", summary="The indexed documents, from the index's manifest")
async def list_documents(context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    return await run_in_threadpool(context.library.listing)


@router.post(
    "",
    status_code=201,
    openapi_extra=UPLOAD_BODY,
    responses=UPLOAD_RESPONSES,
    summary="Upload one or more files (multipart field 'files') and index them",
)
async def upload_documents(request: Request, context: ApiContext = Depends(get_context)) -> JSONResponse:
    limit_mb = context.settings.max_upload_mb
    limit = int(limit_mb * 1048576)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise _too_large(int(declared), limit_mb)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise ApiError(415, "Send the files as multipart/form-data, each in a field named 'files'.", "not_multipart")

    received = 0

    async def counted_receive():
        # A body without Content-Length (chunked) is cut off here instead of filling the disk.
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit + MULTIPART_SLACK:
                raise _BodyTooLarge()
        return message

    try:
        form = await Request(request.scope, counted_receive).form(max_files=MAX_FILES)
    except _BodyTooLarge:
        raise _too_large(received, limit_mb) from None
    except Exception as exc:  # noqa: BLE001 - starlette reports malformed multipart in several ways
        raise ApiError(
            422,
            f"The multipart body could not be read ({exc}); send the files as multipart/form-data.",
            "bad_multipart",
        ) from None
    try:
        others = sorted({name for name, _ in form.multi_items() if name != "files"})
        if others:
            raise ApiError(
                422,
                f"The multipart field '{others[0]}' is not accepted; send the files in fields named "
                "'files' and nothing else.",
                "unknown_field",
            )
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise ApiError(
                422, "No file was attached; send one or more files in multipart fields named 'files'.", "no_files"
            )
        uploads: list[Upload] = []
        for file in files:
            name = clean_filename(file.filename)
            check_supported(name)
            if any(u.name == name for u in uploads):
                raise ApiError(422, f"The file {name} is attached twice; send each file once.", "duplicate_file")
            size = file.size if file.size is not None else _measure(file)
            uploads.append(Upload(name, file.file, size))
        total = sum(u.size for u in uploads)
        if total > limit:
            raise _too_large(total, limit_mb)
        result = await run_in_threadpool(context.library.add, uploads)
    finally:
        await form.close()
    context.service.refresh()
    if result["failed"] and not result["documents"]:
        first = result["failed"][0]
        raise ApiError(422, first["reason"], "unreadable_document", details=result["failed"])
    return JSONResponse(result, status_code=201)


def _measure(file: UploadFile) -> int:
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return size


@router.delete(
    "/{doc_id}",
    responses=DELETE_RESPONSES,
    summary="Drop a document from the index (and delete its file if it was uploaded through the API)",
)
async def delete_document(doc_id: str, context: ApiContext = Depends(get_context)) -> dict[str, Any]:
    result = await run_in_threadpool(context.library.delete, doc_id)
    context.service.refresh()
    return result
