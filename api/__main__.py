"""``python -m api``: serve the HTTP API, or ``python -m api --ask "question"`` to answer once.

python -m api                                   # ./index on http://127.0.0.1:8000, chat page at /
python -m api --index-dir /data/ix --port 9000 --docs-root /data/docs
python -m api --ask "What is the daily meal allowance on business trips?"
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import rag  # noqa: F401  (switches off third-party telemetry before anything else loads)
from rag.config import Settings
from rag.errors import ConfigError, IndexMissingError, RagError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description="Serve questions over the index: POST /ask, the OpenAI protocol at /v1, a chat page at /. "
        "With --ask, answer one question on the console instead.",
    )
    parser.add_argument("--index-dir", help="the index to serve (default ./index, or RAG_INDEX_DIR)")
    parser.add_argument("--config", help="TOML file with settings (see README)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "--allow-no-keys",
        action="store_true",
        default=None,
        help="listen on an address other than loopback without API keys (anyone who can reach it "
        "may then ask, upload and delete); without this flag the server refuses to",
    )
    parser.add_argument(
        "--docs-root",
        help="the folder the index is built from; uploads are saved in its uploads/ "
        "subfolder and the folder is ingested again (default: the folder the last ingest recorded, "
        "if it did, else INDEX_DIR/../documents)",
    )
    parser.add_argument("--top-k", type=int, help="passages handed to the generator (default 5)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--ask", metavar="QUESTION", help="answer QUESTION, print the answer and its sources, and exit")
    parser.add_argument("--json", action="store_true", help="with --ask: print the whole answer as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(
            args.config,
            overrides={
                "index_dir": args.index_dir,
                "host": args.host,
                "port": args.port,
                "docs_root": args.docs_root,
                "top_k": args.top_k,
                "allow_no_keys": args.allow_no_keys,
            },
        )
        if args.ask is not None:
            return ask_once(settings, args.ask, as_json=args.json)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(settings, args.log_level)


def ask_once(settings: Settings, question: str, as_json: bool = False) -> int:
    """Answer one question on the console: the answer, then its numbered sources."""
    from api.schemas import MAX_TOP_K
    from api.sources import source_label
    from rag.answering import AnswerPipeline
    from rag.index import DB_NAME

    if not question.strip():
        print('error: The question is empty; pass it as --ask "your question".', file=sys.stderr)
        return 2
    if not 1 <= settings.top_k <= MAX_TOP_K:
        print(f"error: top_k must be between 1 and {MAX_TOP_K}, not {settings.top_k}.", file=sys.stderr)
        return 2
    if not (Path(settings.index_dir) / DB_NAME).is_file():
        raise IndexMissingError(
            f"No index found in {settings.index_dir}; build one first with: "
            f"python -m ingest DOCS_FOLDER --index-dir {settings.index_dir}"
        )
    pipeline = AnswerPipeline.from_settings(settings)
    pipeline.warm_up()
    answer = pipeline.answer(question)
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print(answer.answer)
    if answer.evidence is not None:
        print(f"  from: \u201c{answer.evidence.text}\u201d")  # the sentence the short answer was read from
    if answer.citations:
        print("\nSources:")
        for citation in answer.citations:
            print(f"  [{citation.number}] {source_label(citation.to_dict())}")
    return 0


def open_access_warning(settings: Settings) -> str | None:
    """What the operator is told at start-up about who may use the server; raises when it must not start.

    Without keys, anyone who can reach the port may ask, upload and delete. On loopback that is
    the users of this machine (and, the guard stops, not the web pages they visit); on any other
    address it is the network, which needs ``allow_no_keys``.
    """
    from api.guard import is_loopback

    if settings.api_keys or settings.read_only_keys:
        return None
    if not is_loopback(settings.host) and not settings.allow_no_keys:
        raise ConfigError(
            f"Refusing to listen on {settings.host} without API keys: anyone who can reach it could add and delete "
            "documents. Set api_keys (RAG_API_KEYS), or listen on 127.0.0.1, or pass --allow-no-keys to accept that."
        )
    who = "anyone on this machine" if is_loopback(settings.host) else f"anyone who can reach {settings.host}"
    return (
        f"No API keys are set: {who} can ask questions and add or delete documents "
        "(set api_keys, RAG_API_KEYS, to require a key)."
    )


def serve(settings: Settings, log_level: str = "info") -> int:
    import uvicorn

    from api.app import create_app

    try:
        warning = open_access_warning(settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if warning:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    print(
        f"Serving {settings.index_dir} on http://{settings.host}:{settings.port} (chat page at /, API docs at /docs)",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
