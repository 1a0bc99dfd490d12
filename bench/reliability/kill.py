"""SIGKILL at random points of incremental ingests: the index is always the old or the new one, never lost.

A folder of generated English and Chinese documents is indexed once. Then, trial after trial,
the folder is changed the way people change theirs (files added, edited, deleted) and
``python -m ingest`` is started on it and killed with SIGKILL at a random moment between its
start and the end of an unkilled run (so every phase is hit: start-up, parsing, embedding,
writing, the commit). After each kill the index must open and search, its manifest must be
exactly the folder as it was before the change or as it is after it (path and SHA-256 of every
document), and its vector index must hold exactly its chunks. Every few trials an ingest runs
to the end and must match the folder. At the end, the index must equal a clean ingest of the
same folder: the same documents and the same chunk texts.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.reliability import Outcome

REPO = Path(__file__).resolve().parents[2]
TOPICS_EN = ["pumps", "lamps", "kettles", "routers", "bicycles", "printers", "heaters", "fans", "drills", "ovens"]
TOPICS_ZH = ["熊猫", "长城", "茶叶", "书法", "瓷器", "丝绸", "灯笼", "剪纸", "京剧", "太极"]


def _document(rng: random.Random, number: int, version: int) -> tuple[str, str]:
    """A file name and text; Chinese for every third document."""
    if number % 3 == 2:
        topic = TOPICS_ZH[number % len(TOPICS_ZH)]
        lines = [f"# {topic}说明 {number}", ""] + [
            f"{topic}第{i}条：编号{number}-{version}的记录写明数值为{rng.randint(10, 9999)}。"
            for i in range(rng.randint(3, 25))
        ]
        return f"zh/doc-{number:03d}.md", "\n".join(lines) + "\n"
    topic = TOPICS_EN[number % len(TOPICS_EN)]
    lines = [f"# Notes on {topic} {number}", ""] + [
        f"Item {i} of the {topic} register (record {number}, version {version}) reads {rng.randint(10, 9999)} units."
        for i in range(rng.randint(3, 25))
    ]
    return f"en/doc-{number:03d}.md", "\n".join(lines) + "\n"


def folder_state(folder: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file, as an ingest of ``folder`` should record it."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            state[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def index_state(index_dir: Path, embedder) -> tuple[dict[str, str] | None, str]:
    """The manifest (path -> SHA-256) of the committed index, or ``None`` and why it is unusable."""
    from rag.config import Settings
    from rag.index import Index

    settings = Settings.load(env={}, overrides={"index_dir": index_dir})
    try:
        index = Index.open(settings, embedder=embedder)
        documents = index.documents()
        chunks = sum(len(record.chunk_ids) for record in documents.values())
        if index.size != chunks:
            return None, f"the vector index holds {index.size} vectors for {chunks} chunks"
        if chunks and not index.search("register record units", 3):
            return None, "a search found nothing"
        return {path: record.sha256 for path, record in documents.items()}, ""
    except Exception as exc:  # noqa: BLE001 - any failure to open is what this test looks for
        return None, f"{exc.__class__.__name__}: {exc}"


def chunk_texts(index_dir: Path) -> list[tuple[str, str]]:
    """(path, text) of every chunk, sorted: what two equal indexes must share."""
    from rag.index import DB_NAME
    from rag.stores.chunk_store import ChunkStore

    store = ChunkStore(index_dir / DB_NAME, readonly=True)
    try:
        return sorted((path, chunk.text) for path in store.documents() for chunk in store.chunks_of(path))
    finally:
        store.close()


def _ingest_command(folder: Path, index_dir: Path) -> list[str]:
    return [sys.executable, "-m", "ingest", str(folder), "--index-dir", str(index_dir), "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _mutate(folder: Path, rng: random.Random, next_number: list[int], version: int) -> None:
    """Add, edit and delete a few files."""
    existing = sorted(p for p in folder.rglob("*.md"))
    for _ in range(rng.randint(1, 4)):  # add
        name, text = _document(rng, next_number[0], version)
        next_number[0] += 1
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    for path in rng.sample(existing, min(len(existing), rng.randint(1, 4))):  # edit
        number = int(path.stem.split("-")[1])
        path.write_text(_document(rng, number, version)[1], encoding="utf-8")
    removable = [p for p in existing if p.exists()]
    for path in rng.sample(removable, min(max(0, len(removable) - 5), rng.randint(0, 2))):  # delete
        path.unlink()


def run(work: Path, quick: bool, trials: int | None = None, seed: int = 0) -> Outcome:
    """``trials`` kills (default 5 quick, 50 full)."""
    from rag.config import Settings
    from rag.embedding import make_embedder

    trials = trials or (5 if quick else 50)
    outcome = Outcome("ingest killed at random points")
    started = time.perf_counter()
    rng = random.Random(seed)
    work = Path(work) / "kill"
    shutil.rmtree(work, ignore_errors=True)
    folder, index_dir = work / "docs", work / "index"
    next_number = [0]
    for _ in range(30 if quick else 60):
        name, text = _document(rng, next_number[0], 0)
        next_number[0] += 1
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    embedder = make_embedder(Settings.load(env={}, overrides={"device": "cpu"}))  # what the CLI ingest uses
    embedder.warm_up()

    done = subprocess.run(_ingest_command(folder, index_dir), cwd=REPO, env=_env(), capture_output=True, text=True)
    if done.returncode != 0:
        outcome.record(False, "first ingest", done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
        return outcome
    # How long an incremental ingest takes, unkilled: the window the kills are drawn from.
    _mutate(folder, rng, next_number, 0)
    first = time.perf_counter()
    done = subprocess.run(_ingest_command(folder, index_dir), cwd=REPO, env=_env(), capture_output=True, text=True)
    full_s = time.perf_counter() - first
    before = folder_state(folder)
    seen = {"old": 0, "new": 0, "finished": 0}
    for trial in range(1, trials + 1):
        _mutate(folder, rng, next_number, trial)
        after = folder_state(folder)
        delay = rng.uniform(0.2, full_s * 1.1)
        process = subprocess.Popen(
            _ingest_command(folder, index_dir),
            cwd=REPO,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            process.wait(delay)
            finished = True
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            finished = False
        state, why = index_state(index_dir, embedder)
        if state is None:
            outcome.record(False, f"kill {trial} at {delay:.1f} s", f"the index does not open: {why}")
        elif state == after:
            seen["finished" if finished else "new"] += 1
            outcome.record(True, f"kill {trial}")
        elif state == before:
            seen["old"] += 1
            outcome.record(True, f"kill {trial}")
        else:
            lost = sorted(set(before) & set(after) - set(state))
            outcome.record(
                False,
                f"kill {trial} at {delay:.1f} s",
                f"the index is neither the old nor the new folder (missing {lost[:3]})",
            )
        # The index is now "before" or "after"; the next change starts from the folder as it is.
        before = state if state in (before, after) else after
        if trial % 10 == 0 or trial == trials:
            # An ingest run to the end must bring the index to the folder, whatever came before.
            done = subprocess.run(
                _ingest_command(folder, index_dir), cwd=REPO, env=_env(), capture_output=True, text=True
            )
            state, why = index_state(index_dir, embedder)
            ok = done.returncode == 0 and state == after
            outcome.record(
                ok,
                f"ingest to the end after kill {trial}",
                "" if ok else (why or f"exit {done.returncode}, index differs from the folder"),
            )
            before = after
    clean = work / "clean-index"
    subprocess.run(_ingest_command(folder, clean), cwd=REPO, env=_env(), capture_output=True, text=True)
    same = chunk_texts(index_dir) == chunk_texts(clean)
    outcome.record(
        same, "the final index equals a clean ingest of the same folder", "" if same else "chunk texts differ"
    )
    outcome.notes.append(
        f"{trials} kills drawn between 0.2 s and {full_s * 1.1:.1f} s (an unkilled incremental "
        f"ingest took {full_s:.1f} s): {seen['old']} left the old index, {seen['new']} the new one "
        f"(killed after the commit), {seen['finished']} came after the ingest had ended"
    )
    outcome.seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)
    return outcome


if __name__ == "__main__":
    from bench.reliability.report import print_outcomes

    quick = "--quick" in sys.argv
    print_outcomes([run(Path("/tmp/rag-reliability"), quick)])
