"""``python -m bench.scale_bench --chunks 20000``: the scale bench's small mode, end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_small_scale_bench_runs_and_small_ingests_write_small_deltas(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale_bench",
            "--chunks",
            "20000",
            "--dir",
            str(tmp_path / "work"),
            "--rounds",
            "1",
            "--skip-cli",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["search"]["chunks"] == 20_000
    ingests = figures["ingests"]
    assert ingests["add_10_files"]["files_new"] == 10
    assert ingests["change_10_files"]["files_changed"] == 10
    assert ingests["delete_5_files"]["files_removed"] == 5
    index_bytes = ingests["change_10_files"]["index_bytes_before"]
    for step in ("change_10_files", "delete_5_files", "change_5_files"):
        # A small ingest writes a delta segment and a deletion set, not the index again.
        assert 0 < ingests[step]["store_bytes_written"] < index_bytes / 100, (step, ingests[step])
    after = figures["search_after"]
    assert (
        after["chunks"]
        == 20_000 + ingests["change_10_files"]["chunks_added"] - ingests["delete_5_files"]["chunks_removed"]
    )
    # Questions about the real files find them among the synthetic chunks; deleted ones are gone.
    assert after["real_files_in_top3"] == after["real_files_asked"] == 4
    assert after["deleted_files_found"] == []
