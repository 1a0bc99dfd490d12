"""The reliability suite: ``python -m bench.reliability`` (see ``__main__``).

Each section is a module with ``run(work: Path, quick: bool) -> Outcome``: it tries a number of
cases against the real components (ingest processes, a real server, the real generator) and
says how many held. ``quick`` is the short version CI runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What one section of the suite tried, and what held."""

    section: str
    tried: int = 0
    passed: int = 0
    failures: list[str] = field(default_factory=list)  # one line per failed case, saying what broke
    notes: list[str] = field(default_factory=list)  # figures worth printing (timings, rates)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return self.tried - self.passed

    def record(self, ok: bool, case: str, why: str = "") -> None:
        """Count one case; a failed one is kept with its reason."""
        self.tried += 1
        if ok:
            self.passed += 1
        else:
            self.failures.append(f"{case}: {why}" if why else case)

    def to_dict(self) -> dict[str, object]:
        return {
            "section": self.section,
            "tried": self.tried,
            "passed": self.passed,
            "failed": self.failed,
            "failures": self.failures,
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }
