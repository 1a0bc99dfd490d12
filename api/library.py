"""The document folder behind the index, as the API adds to it and deletes from it.

An ingest makes the index mirror ONE folder: files missing from it are removed from the index.
So uploads cannot be ingested on their own; they are saved inside the folder the index is built
from (``docs_root``), in its ``uploads/`` subfolder, and that whole folder is ingested again
through the same incremental :func:`rag.ingestion.ingest_folder` the CLI uses. Only the new
file is parsed and embedded; a later ``python -m ingest DOCS_ROOT`` keeps the uploads, since
they are part of the folder.

Which folder is ``docs_root``:

1. the ``docs_root`` setting (``--docs-root``, ``RAG_DOCS_ROOT``), if set;
2. else the folder the last ingest recorded in the index (``meta.root``), if it did;
3. else ``<index_dir>/../documents``: where an index started from uploads keeps its files.

Before ingesting, the folder is checked against the index: if the index holds documents and
none of them is in the folder, the server refuses (409) rather than guess, since ingesting the
wrong folder would drop every indexed document. ``GET /documents`` shows the folder in use.

Deleting never touches a user's own file: an uploaded document's file (in ``uploads/``, which the
service owns) is deleted; any other document is recorded as removed (:mod:`rag.removals`) and
left out of this and every later ingest, its file kept where it is.
"""

from __future__ import annotations

import os
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from api.errors import ApiError
from api.paths import shown_path
from rag.config import Settings
from rag.errors import InputError
from rag.index import DB_NAME
from rag.removals import forget_removals, mark_removed, removed_paths
from rag.stores.chunk_store import ChunkStore, DocumentRecord

UPLOADS = "uploads"


@dataclass
class Upload:
    """One file as received: its cleaned name and its content (a spooled temporary file)."""

    name: str
    file: BinaryIO
    size: int


def clean_filename(raw: str | None) -> str:
    """The last path component of a client-supplied name, or a 422 if it is unusable."""
    name = unicodedata.normalize("NFC", (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip())
    if not name or name in (".", ".."):
        raise ApiError(
            422, "An uploaded file has no file name; send each file with a name such as report.pdf.", "bad_filename"
        )
    if name.startswith("."):
        raise ApiError(
            422,
            f"The file name '{name}' starts with a dot, and hidden files are not indexed; rename it.",
            "bad_filename",
        )
    if any(ord(ch) < 32 for ch in name) or len(name.encode("utf-8")) > 200:
        raise ApiError(
            422, f"The file name {name!r} is too long or holds control characters; rename it.", "bad_filename"
        )
    return name


def check_supported(name: str) -> None:
    from rag.parsing import SUPPORTED_SUFFIXES

    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ApiError(
            415,
            f"{name}: file type '{suffix or '(none)'}' is not supported; upload one of {kinds}.",
            "unsupported_type",
        )


def record_dict(record: DocumentRecord) -> dict[str, Any]:
    return {
        "doc_id": record.doc_id,
        "path": record.path,
        "size": record.size,
        "sha256": record.sha256,
        "chunks": len(record.chunk_ids),
        "mtime": record.mtime,
        "ingested_at": record.ingested_at,
        "uploaded": record.path.startswith(UPLOADS + "/"),
    }


class DocumentLibrary:
    """Lists the indexed documents and adds or deletes files in ``docs_root``, then re-ingests it."""

    def __init__(self, settings: Settings, embedder: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.index_dir = Path(settings.index_dir)
        self._embedder = embedder or (lambda: None)
        self._lock = threading.Lock()  # one ingest at a time from this server; the CLI is kept out by the index lock

    # -- reading --------------------------------------------------------------------------

    def _read(self) -> tuple[dict[str, DocumentRecord], dict[str, tuple[str, str]], dict[str, str]]:
        path = self.index_dir / DB_NAME
        if not path.is_file():
            return {}, {}, {}
        store = ChunkStore(path, readonly=True)
        try:
            return store.documents(), store.failures(), store.get_meta()
        finally:
            store.close()

    def manifest(self) -> dict[str, DocumentRecord]:
        return self._read()[0]

    def listing(self) -> dict[str, Any]:
        """What ``GET /documents`` shows."""
        documents, failures, meta = self._read()
        try:
            root: Path | None = self.docs_root(documents, meta)
        except ApiError:
            root = None
        return {
            "documents": [record_dict(r) for r in documents.values()],
            "failed": [{"path": path, "reason": reason} for path, (_, reason) in sorted(failures.items())],
            "count": len(documents),
            "docs_root": self._shown(root) if root else None,
            "uploads_dir": f"{self._shown(root)}{os.sep}{UPLOADS}" if root else None,
            "removed": sorted(removed_paths(self.index_dir)),
            "generation": int(meta.get("generation", "0") or 0),
        }

    def _shown(self, path: Path) -> str:
        return shown_path(path, self.settings)

    def _report(self, report) -> dict[str, Any]:
        data = report.to_dict()
        for key in ("root", "index_dir"):
            if data.get(key):
                data[key] = self._shown(Path(str(data[key])))
        return data

    def find(self, doc_id: str) -> DocumentRecord:
        for record in self.manifest().values():
            if record.doc_id == doc_id:
                return record
        raise ApiError(
            404, f"There is no document with id '{doc_id}'; list the documents with GET /documents.", "unknown_document"
        )

    # -- the folder -----------------------------------------------------------------------

    def docs_root(self, documents: dict[str, DocumentRecord] | None = None, meta: dict[str, str] | None = None) -> Path:
        """The folder the index is built from (see the module docstring), checked against the index."""
        if documents is None or meta is None:
            documents, _, meta = self._read()
        if self.settings.docs_root:
            root, chosen = Path(self.settings.docs_root).expanduser(), True
        elif meta.get("root"):
            root, chosen = Path(meta["root"]), True
        else:
            root, chosen = self.index_dir.parent / "documents", False
        if documents and not any((root / path).is_file() for path in documents):
            if not chosen:
                raise ApiError(
                    409,
                    "The server does not know which folder this index was built from; restart it with "
                    "--docs-root FOLDER (the folder given to python -m ingest) to add or delete documents.",
                    "docs_root_unknown",
                )
            raise ApiError(
                409,
                f"None of the {len(documents)} indexed documents is in {root}; set docs_root to the folder the index "
                "was built from, since ingesting this one would drop them all.",
                "docs_root_mismatch",
            )
        return root

    # -- changing -------------------------------------------------------------------------

    def add(self, uploads: list[Upload]) -> dict[str, Any]:
        """Save ``uploads`` in ``docs_root/uploads`` and ingest the folder.

        A file of the same name is replaced. If the ingest fails, or a new version cannot be
        parsed, the folder is put back as it was (the previous version restored), so a failed
        upload changes nothing.
        """
        with self._lock:
            root = self.docs_root()
            folder = root / UPLOADS
            folder.mkdir(parents=True, exist_ok=True)
            saved: list[str] = []
            backups: dict[Path, Path] = {}
            try:
                for upload in uploads:
                    dest = folder / upload.name
                    if dest.exists():
                        backups[dest] = folder / f".{uuid.uuid4().hex}.previous"
                        os.replace(dest, backups[dest])
                    # Written under a hidden name (ingest skips those) and renamed when complete,
                    # so a concurrent CLI ingest never reads half a file.
                    partial = folder / f".{uuid.uuid4().hex}.part"
                    with open(partial, "wb") as out:
                        upload.file.seek(0)
                        shutil.copyfileobj(upload.file, out, 1 << 20)
                    os.replace(partial, dest)
                    saved.append(f"{UPLOADS}/{upload.name}")
                report = self._ingest(root)
            except BaseException:
                for path in saved:
                    (root / path).unlink(missing_ok=True)
                for dest, backup in backups.items():
                    os.replace(backup, dest)
                raise
            # Reasons name the file by its server path; the client knows it by its name.
            failed = {item["path"]: item["reason"].replace(f"{root}{os.sep}", "") for item in report.failed}
            rejected = [{"path": path, "reason": failed[path]} for path in saved if path in failed]
            for item in rejected:
                dest = root / item["path"]
                dest.unlink(missing_ok=True)
                if dest in backups:
                    os.replace(backups.pop(dest), dest)
            for backup in backups.values():
                backup.unlink(missing_ok=True)
            if rejected:
                # Forget the rejected files (and re-index a restored previous version).
                try:
                    self._ingest(root)
                except InputError:  # nothing else in the folder: the failure records stay, harmlessly
                    pass
            documents = self.manifest()
            added = [record_dict(documents[path]) for path in saved if path in documents and path not in failed]
            return {
                "documents": added,
                "failed": rejected,
                "docs_root": self._shown(root),
                "ingest": self._report(report),
            }

    def delete(self, doc_id: str) -> dict[str, Any]:
        """Drop a document from the index; delete its file only if the service stored it (an upload).

        A user's own file stays where it is: its path is recorded as removed
        (:mod:`rag.removals`), so this ingest and later ones leave it out.
        """
        from rag.ingestion import scan_folder
        from rag.parsing import SUPPORTED_SUFFIXES

        with self._lock:
            record = self.find(doc_id)
            root = self.docs_root()
            uploaded = record.path.startswith(UPLOADS + "/")
            removed = removed_paths(self.index_dir)
            files, _ = scan_folder(root, SUPPORTED_SUFFIXES, exclude=self.index_dir)
            if not [f for f in files if f.path != record.path and f.path not in removed]:
                raise ApiError(
                    409,
                    f"{record.path} is the last document in the index, and an index needs at least "
                    "one; add another document first.",
                    "last_document",
                )
            if uploaded:
                target = (root / record.path).resolve()
                if not target.is_relative_to((root / UPLOADS).resolve()):
                    raise ApiError(
                        409, f"{record.path} is outside the uploads folder; remove it there by hand.", "outside_uploads"
                    )
                target.unlink(missing_ok=True)
            else:
                mark_removed(self.index_dir, record.path, record.sha256)
            try:
                report = self._ingest(root)
            except BaseException:
                if not uploaded:
                    forget_removals(self.index_dir, [record.path])
                raise
            return {
                "deleted": record_dict(record),
                "file_deleted": uploaded,
                "docs_root": self._shown(root),
                "ingest": self._report(report),
            }

    def _ingest(self, root: Path):
        from rag.ingestion import ingest_folder

        return ingest_folder(root, self.settings, embedder=self._embedder())
