"""The suite's one table: tried / passed / failed per section, then what failed and the figures."""

from __future__ import annotations

from collections.abc import Iterable

from bench.reliability import Outcome


def format_outcomes(outcomes: Iterable[Outcome]) -> str:
    outcomes = list(outcomes)
    width = max([len(o.section) for o in outcomes] + [len("section")])
    lines = [f"{'section':<{width}}  {'tried':>6}  {'passed':>6}  {'failed':>6}  {'seconds':>7}", "-" * (width + 34)]
    for o in outcomes:
        lines.append(f"{o.section:<{width}}  {o.tried:>6}  {o.passed:>6}  {o.failed:>6}  {o.seconds:>7.0f}")
    total_tried, total_failed = sum(o.tried for o in outcomes), sum(o.failed for o in outcomes)
    lines.append("-" * (width + 34))
    lines.append(
        f"{'all':<{width}}  {total_tried:>6}  {total_tried - total_failed:>6}  {total_failed:>6}  "
        f"{sum(o.seconds for o in outcomes):>7.0f}"
    )
    for o in outcomes:
        if o.notes or o.failures:
            lines.append("")
            lines.append(f"{o.section}:")
            lines.extend(f"  {note}" for note in o.notes)
            lines.extend(f"  FAILED {failure}" for failure in o.failures[:20])
            if len(o.failures) > 20:
                lines.append(f"  ... and {len(o.failures) - 20} more failures")
    return "\n".join(lines)


def print_outcomes(outcomes: Iterable[Outcome]) -> None:
    print(format_outcomes(outcomes), flush=True)
