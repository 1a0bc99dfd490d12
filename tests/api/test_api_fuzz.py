"""Schemathesis against a real server (``bench.reliability.fuzz``, its short version): no 5xx, no schema violation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path):
    pytest.importorskip("schemathesis", reason="schemathesis is a dev dependency (pip install -e '.[dev]')")
    from bench.reliability import fuzz

    outcome = fuzz.run(tmp_path, quick=True)
    assert outcome.tried > 100, outcome.to_dict()  # the run really generated requests
    assert outcome.failures == [], "\n".join(outcome.failures + [(tmp_path / "schemathesis.txt").read_text()[-3000:]])
