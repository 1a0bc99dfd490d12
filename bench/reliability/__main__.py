"""``python -m bench.reliability``: the reliability suite, bounded in time, one table at the end.

    python -m bench.reliability                 # everything, full size (about 25 minutes on 2 cores)
    python -m bench.reliability --quick         # the short version CI runs (a few minutes)
    python -m bench.reliability --only kill,load --out reliability.json

Sections, each against the real components (ingest processes, a real server, the real models):

=============  ===========================================================================
kill           SIGKILL at random points of incremental ingests (:mod:`bench.reliability.kill`)
bad_inputs     a corpus of broken, odd and hostile files (:mod:`bench.reliability.bad_inputs`)
fuzz           schemathesis against the server's own OpenAPI description (:mod:`.fuzz`)
load           many clients at once against admission control (:mod:`.load`)
injection      instructions planted in documents (:mod:`bench.reliability.injection`)
=============  ===========================================================================

Exit status 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench.reliability import Outcome  # noqa: E402
from bench.reliability.report import format_outcomes  # noqa: E402

SECTIONS = ("kill", "bad_inputs", "fuzz", "load", "injection")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short version (CI)")
    parser.add_argument("--only", help=f"comma-separated sections to run, of {', '.join(SECTIONS)}")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", help="also write the outcomes as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"error: unknown section {unknown[0]!r}; the sections are {', '.join(SECTIONS)}.", file=sys.stderr)
        return 2
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="rag-reliability-"))
    outcomes: list[Outcome] = []
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.reliability.{name}")
            outcome = module.run(work / name, args.quick)
        except Exception as exc:  # noqa: BLE001 - a section that cannot run is a failure in the table
            traceback.print_exc()
            outcome = Outcome(name)
            outcome.record(False, "the section itself", f"{exc.__class__.__name__}: {exc}")
        outcome.seconds = outcome.seconds or time.perf_counter() - started
        outcomes.append(outcome)
        print(format_outcomes([outcome]), file=sys.stderr, flush=True)
    print(format_outcomes(outcomes))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"quick": args.quick, "sections": [o.to_dict() for o in outcomes]}, ensure_ascii=False, indent=1
            ),
            encoding="utf-8",
        )
    return 0 if all(o.failed == 0 for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
