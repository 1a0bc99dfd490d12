"""``python -m ingest DOCS_FOLDER``: build or update the index of a folder of documents."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import rag  # noqa: F401  (switches off third-party telemetry before anything else loads)
from rag.config import Settings
from rag.energy import EnergyMeter, EnergyReport
from rag.errors import RagError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Parse, chunk, embed and index a folder of documents. Run it again after "
        "editing the folder: only new and changed files are processed, deleted files are removed.",
    )
    parser.add_argument("folder", help="folder of documents (md, txt, html, pdf, docx, pptx, csv, json, eml)")
    parser.add_argument("--index-dir", help="where the index lives (default ./index, or RAG_INDEX_DIR)")
    parser.add_argument("--config", help="TOML file with settings (see README)")
    parser.add_argument(
        "--workers",
        type=int,
        help="parsing processes (default 1; on a CPU, files are parsed in waves on every core anyway)",
    )
    parser.add_argument("--embed-model", help="sentence-transformers model name or path")
    parser.add_argument("--chunk-tokens", type=int, help="chunk size in embedder tokens (default 256)")
    parser.add_argument("--chunk-overlap", type=int, help="overlap between chunks in tokens (default 32)")
    parser.add_argument("--max-file-mb", type=float, help="skip files larger than this (default 50)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N] for the embedder")
    parser.add_argument("--rebuild", action="store_true", help="drop the index and embed everything again")
    parser.add_argument(
        "--include-removed",
        action="store_true",
        help="index again the files that were removed from the index through the API (DELETE /documents)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="parse and embed as Ray Data batches (needs the 'ray' extra); "
        "ADDRESS of a running cluster, or none to start a local one",
    )
    parser.add_argument(
        "--energy",
        action="store_true",
        help="estimate the run's energy and CO2e with codecarbon, offline (adds ~2 s; README, Energy)",
    )
    parser.add_argument(
        "--energy-country",
        metavar="ISO3",
        help="grid for --energy: a 3-letter country code (FRA, USA, CHN...) or WORLD "
        "(default: the energy_country setting, WORLD)",
    )
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(
            args.config,
            overrides={
                "index_dir": args.index_dir,
                "workers": args.workers,
                "embed_model": args.embed_model,
                "chunk_tokens": args.chunk_tokens,
                "chunk_overlap": args.chunk_overlap,
                "max_file_mb": args.max_file_mb,
                "device": args.device,
                "energy_country": args.energy_country,
            },
        )
        from ingest.progress import make_progress

        progress = make_progress(quiet=args.quiet)
        if args.include_removed:
            from rag.removals import forget_removals

            for path in forget_removals(settings.index_dir):
                progress.log(f"{path}: removed through the API before; indexed again.")
        meter = EnergyMeter(settings.energy_country, "process").start() if args.energy else None
        try:
            if args.ray:
                from rag.ingestion_ray import ingest_folder_ray

                report = ingest_folder_ray(
                    args.folder,
                    settings,
                    address=args.ray,
                    progress=progress,
                    rebuild=args.rebuild,
                    before_commit=_pause_before_commit(),
                )
            else:
                from rag.ingestion import ingest_folder

                report = ingest_folder(
                    args.folder, settings, progress=progress, rebuild=args.rebuild, before_commit=_pause_before_commit()
                )
        finally:
            energy = meter.stop() if meter else None
        progress.close()
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the previous index is unchanged.", file=sys.stderr)
        return 130
    documents = report.files_new + report.files_changed
    if args.json:
        data = report.to_dict()
        if energy is not None:
            data["energy"] = energy.to_dict(documents, "documents")
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(format_summary(report, energy))
    return 0


def _pause_before_commit() -> Callable[[], None] | None:
    """Test seam: with RAG_TEST_PAUSE_BEFORE_COMMIT=PATH set, the run writes PATH and waits 60 s
    just before its commit, so a test that starts this command can kill it there. Read here, at
    the command's edge, because an environment variable is all that reaches a child process."""
    pause = os.environ.get("RAG_TEST_PAUSE_BEFORE_COMMIT")
    if not pause:
        return None
    marker = Path(pause)

    def hold() -> None:
        marker.write_text("waiting")
        time.sleep(60)

    return hold


def format_summary(report, energy: EnergyReport | None = None) -> str:
    """The human-readable end-of-run summary; with ``energy``, a line of kWh and g CO2e per
    1,000 documents parsed and embedded (new and changed files)."""
    lines = [
        f"Indexed {report.root} -> {report.index_dir} "
        f"(generation {report.generation}, {report.dense_kind or 'empty'} index)",
        f"  files:  {report.files_new} new, {report.files_changed} changed, {report.files_unchanged} unchanged, "
        f"{report.files_removed} removed, {report.files_failed} failed, {len(report.skipped)} skipped",
        f"  chunks: {report.chunks_added} added, {report.chunks_removed} removed, {report.chunks_embedded} embedded, "
        f"{report.chunks_total} in the index from {report.documents_total} documents",
        f"  time:   {report.seconds:.1f} s, {report.chunks_per_s:.1f} chunks/s embedded; "
        f"index size {report.index_bytes / 1e6:.1f} MB, {report.bytes_written / 1e6:.1f} MB of index files written",
    ]
    if energy is not None:
        line = energy.summary_line(report.files_new + report.files_changed, "documents")
        lines.append(f"  energy: {line}" if energy.measured else f"  {line}")
        if energy.measured:
            lines.append(f"          {energy.method}")
    if report.reprocessed:
        lines.append(f"  parsed again: {report.reprocessed}")
    if report.failed:
        lines.append("  failed files:")
        lines.extend(f"    - {item['reason']}" for item in report.failed)
    if report.skipped:
        lines.append("  skipped files (unsupported, unreadable, or not regular files):")
        lines.extend(f"    - {item['reason']}" for item in report.skipped)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
