"""Finding the files of a folder and hashing them, without ever blocking on one that is not a
regular file (a FIFO, a device, a dangling or looping link)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass
class SourceFile:
    """A file found in the ingested folder, as the scan saw it (its hash filled in later)."""

    path: str  # relative to the ingested root, forward slashes
    abspath: Path
    size: int
    mtime: float
    sha256: str = ""


def scan_folder(
    root: Path, supported: Iterable[str], exclude: Path | None = None, problems: list[dict[str, str]] | None = None
) -> tuple[list[SourceFile], list[str]]:
    """Supported files under ``root`` (hidden files and folders skipped) and unsupported ones.

    Only regular files (or links to them) are taken, and nothing is opened here: dangling
    links, link loops, FIFOs, devices and sockets, links to folders (never followed) and
    folders that cannot be listed are left out, each added to ``problems`` when it is given as
    ``{path, reason}``, the reason one sentence naming the file.
    """
    supported = set(supported)
    files: list[SourceFile] = []
    unsupported: list[str] = []
    exclude_resolved = exclude.resolve() if exclude is not None else None

    def note(rel: str, why: str) -> None:
        if problems is not None:
            problems.append({"path": rel, "reason": f"{rel}: {why}; skipped."})

    def unlistable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        rel = where.relative_to(root).as_posix() if where != root and where.is_relative_to(root) else str(where)
        why = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else (exc.strerror or "error")
        note(rel + "/", f"the folder cannot be listed ({why}), so none of its files were read")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable):
        here = Path(dirpath)
        folders = []
        for name in sorted(dirnames):
            full = here / name
            if name.startswith(".") or (exclude_resolved is not None and full.resolve() == exclude_resolved):
                continue
            if full.is_symlink():
                # os.walk does not follow them either; following could loop or leave the folder.
                note(
                    full.relative_to(root).as_posix(),
                    "a link to a folder, and links to folders are not followed (ingest that folder itself)",
                )
                continue
            folders.append(name)
        dirnames[:] = folders
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = here / name
            rel = full.relative_to(root).as_posix()
            try:
                info = os.stat(full)  # follows links; opens nothing
            except OSError as exc:
                note(rel, _stat_reason(full, exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                note(rel, f"{_file_kind(info.st_mode)}, not a regular file, so it was not opened")
                continue
            if full.suffix.lower() not in supported:
                unsupported.append(rel)
                continue
            files.append(SourceFile(rel, full, info.st_size, info.st_mtime))
    return files, unsupported


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _stat_reason(path: Path, exc: OSError) -> str:
    """Why ``os.stat`` failed on a name the folder listing gave, in words."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR) and path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"a dangling symbolic link (its target {target} does not exist)"
    return os_reason(exc)


def os_reason(exc: OSError) -> str:
    """An OS error on a file as a user reads it."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the service cannot read it)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "it vanished (deleted or moved while the ingest ran)"
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link leads back to itself)"
    if isinstance(exc, NotRegularFileError):
        return str(exc)
    return f"it could not be read ({exc.strerror or exc.__class__.__name__})"


class NotRegularFileError(OSError):
    """A path that was a regular file at the scan is now something else (a FIFO, a folder)."""


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, never blocking: a FIFO put in a file's place after the
    scan would otherwise hang the ingest on ``open``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(
                f"{_file_kind(mode) if not stat.S_ISDIR(mode) else 'a folder'} now, "
                "not the regular file it was when the folder was scanned"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes, in hex (read through :func:`open_regular`)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
