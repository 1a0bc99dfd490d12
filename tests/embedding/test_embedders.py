"""The multilingual embedders (rag/embedders/): loaded offline from their packages, behind the
same interface as the sentence-transformers one, through the real ingest and search."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import Settings
from rag.embedding import SentenceTransformerEmbedder, embedder_class, make_embedder
from rag.errors import ConfigError, ModelMismatchError
from rag.index import Index
from rag.ingestion import ingest_folder, token_functions
from tests import docfactory

BACKENDS = ["use-m3+minilm-l6", "use-multilingual-v3", "multilingual-e5-small"]

PASSAGES = [
    "长城是中国古代的军事防御工程，东西绵延两万多公里，修建历时两千多年。",
    "冲泡龙井茶时，水温以八十度左右为宜，水太烫会把嫩芽烫熟。",
    "员工出差期间每天可以报销四十五欧元的餐费。",
    "The Eiffel Tower was finished in 1889 for the World's Fair in Paris.",
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    embedder = make_embedder(Settings.load(env={}, overrides={"embed_model": request.param}))
    embedder.warm_up()
    return embedder


def test_loads_offline_by_short_name_and_embeds_both_languages(backend):
    vectors = backend.embed(["长城有多长？", "How tall is the Eiffel Tower?"])
    assert vectors.shape == (2, backend.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert backend.embed([]).shape == (0, backend.dimension)
    assert backend.embed_queries(["长城有多长？"]).shape == (1, backend.dimension)
    assert backend.unknown_ratio("长城有多长？") < 0.1  # it reads Chinese (MiniLM: ~0.5)


@pytest.mark.parametrize(
    "question, gold",
    [
        ("中国那道古老的城墙一共有多长？", 0),  # shares no word with the passage but 长/中国
        ("泡绿茶用多热的水合适？", 1),
        ("出门办公事，一天的饭钱能报多少？", 2),
        ("In which year was the Paris landmark completed?", 3),
        ("How do plants make food from light?", 4),
        ("长城是什么时候开始修的", 0),
    ],
)
def test_a_paraphrase_ranks_its_passage_first(backend, question, gold):
    scores = backend.embed(PASSAGES) @ backend.embed_queries([question])[0]
    assert int(np.argmax(scores)) == gold, scores


@pytest.mark.parametrize(
    "question, gold",
    [
        ("How hot should the water be for Longjing tea?", 1),  # English question, Chinese passage
        ("How long is the Great Wall of China?", 0),
        ("埃菲尔铁塔是哪一年建成的？", 3),  # Chinese question, English passage
        ("植物怎样利用阳光制造养分？", 4),
    ],
)
def test_a_question_finds_its_passage_in_the_other_language(backend, question, gold, request):
    if backend.name == "multilingual-e5-small" and gold >= 3:
        request.applymarker(
            pytest.mark.xfail(
                reason="seen: e5-small ranks a Chinese passage above the English "
                "one for these Chinese questions (bench/README.md, cross-lingual)"
            )
        )
    scores = backend.embed(PASSAGES) @ backend.embed_queries([question])[0]
    assert int(np.argmax(scores)) == gold, scores


def test_e5_questions_and_passages_are_encoded_differently():
    embedder = make_embedder(Settings.load(env={}, overrides={"embed_model": "multilingual-e5-small"}))
    text = "冲泡龙井茶的水温应该是多少？"
    as_query, as_passage = embedder.embed_queries([text])[0], embedder.embed([text])[0]
    assert float(as_query @ as_passage) < 0.99  # "query: " and "passage: " prefixes
    # and the query side is the one that finds passages: it ranks the tea passage first and
    # puts a wider margin between it and the rest than the passage encoding of the question does
    passages = embedder.embed(PASSAGES)
    by_query, by_passage = passages @ as_query, passages @ as_passage
    assert int(np.argmax(by_query)) == 1

    def margin(scores):
        return float(scores[1] - np.delete(scores, 1).max())

    assert margin(by_query) > max(0.0, margin(by_passage))  # seen: 0.130 against 0.098


def test_token_counts_and_cuts(backend):
    text = "长城是中国古代的军事防御工程。The wall is long. " * 20
    total = backend.count_tokens([text])[0]
    assert total > 100 and backend.count_tokens([]) == []
    pieces = backend.split_tokens(text, 40)
    assert "".join(pieces) == text
    assert all(n <= 40 for n in backend.count_tokens(pieces))
    # parsing workers count with the same tokenizer, loaded from the name the plan carries
    count, split = token_functions(backend.tokenizer_source)
    assert count([text, "长城"]) == backend.count_tokens([text, "长城"])
    assert split(text, 40) == pieces


def _folder(root, copies: int = 1):
    """Small generated documents in both languages; ``copies`` > 1 adds filler files, enough
    for the ingest to prepare them in worker processes."""
    docfactory.make_md(root / "greatwall.md", "长城", [], [("历史", [PASSAGES[0], "明长城东起虎山，西至嘉峪关。"])])
    docfactory.make_txt(root / "tea.txt", PASSAGES[1] + "\n\n龙井茶产于杭州西湖一带。")
    docfactory.make_txt(root / "travel.txt", PASSAGES[2] + "\n\n住宿费按实际发生额报销。")
    docfactory.make_md(root / "paris.md", "Paris", [], [("Landmarks", [PASSAGES[3], "It is 330 metres tall."])])
    for i in range(copies - 1):
        docfactory.make_txt(
            root / f"filler-{i:02d}.txt", f"第{i}号仓库存放的是办公用品和第{i}批纸张。Warehouse {i} keeps paper."
        )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", BACKENDS)
def test_ingest_and_search_round_trip(tmp_path, name):
    settings = Settings.load(env={}, overrides={"index_dir": tmp_path / "index", "embed_model": name})
    report = ingest_folder(_folder(tmp_path / "docs", copies=16), settings)  # 19 files: worker processes
    assert report.files_new == 19 and not report.failed
    index = Index.open(settings)
    assert index.stats()["embed_model"] == name and index.stats()["dimension"] == index.embedder.dimension
    for question, source in [
        ("中国那道古老的城墙一共有多长？", "greatwall.md"),
        ("How hot should the water be for Longjing tea?", "tea.txt"),
        ("In which year was the Paris landmark completed?", "paris.md"),
    ]:
        assert index.search(question, k=3, mode="dense")[0].chunk.source == source, question
        assert index.search(question, k=3, mode="hybrid")[0].chunk.source == source, question


@pytest.mark.slow
def test_a_minilm_index_keeps_working_and_rebuild_moves_it(tmp_path, minilm):
    """An index built when MiniLM was the default opens, answers and takes new files with the
    default settings (embed_model "auto"); --rebuild moves it to the new default."""
    docs = _folder(tmp_path / "docs")
    old = Settings.load(env={}, overrides={"index_dir": tmp_path / "index", "embed_model": "all-MiniLM-L6-v2"})
    ingest_folder(docs, old, embedder=minilm)
    default = Settings.load(env={}, overrides={"index_dir": tmp_path / "index"})
    assert default.embed_model == "auto"
    opened = Index.open(default)
    assert isinstance(opened.embedder, SentenceTransformerEmbedder)
    assert opened.stats()["embed_model"] == "all-MiniLM-L6-v2"
    assert opened.search("Eiffel Tower", k=1)[0].chunk.source == "paris.md"
    docfactory.make_txt(docs / "new.txt", "The night bus leaves the harbour at 23:40 every day.")
    added = ingest_folder(docs, default, embedder=opened.embedder)
    assert (
        added.files_new == 1
        and Index.open(default, embedder=opened.embedder).stats()["embed_model"] == "all-MiniLM-L6-v2"
    )

    use = default.replace(embed_model="use-multilingual-v3")
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2.*use-multilingual-v3.*--rebuild"):
        Index.open(use)
    with pytest.raises(ModelMismatchError, match="all-MiniLM-L6-v2"):
        ingest_folder(docs, use)

    ingest_folder(docs, default, rebuild=True)
    moved = Index.open(default)
    assert moved.stats()["embed_model"] == "use-m3+minilm-l6" and moved.stats()["dimension"] == 896
    assert moved.search("How hot should the water be for Longjing tea?", k=1)[0].chunk.source == "tea.txt"


def test_the_default_embedder_weights_minilm_by_what_it_reads(embedder):
    """Chinese questions are ranked by USE alone (MiniLM reads them as [UNK]); English ones by
    the mean of both cosines; passages are unit vectors."""
    passages = embedder.embed(PASSAGES)
    assert embedder.name == "use-m3+minilm-l6" and passages.shape == (5, 896)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    chinese, english = embedder.embed_queries(["泡绿茶用多热的水合适？", "How hot should the water be for tea?"])
    assert not chinese[512:].any()
    use_alone = embedder.use.embed_queries(["泡绿茶用多热的水合适？"])[0]
    assert np.allclose(chinese @ passages.T, (use_alone @ embedder.use.embed(PASSAGES).T), atol=1e-5)
    cos_use = embedder.use.embed(PASSAGES) @ embedder.use.embed_queries(["How hot should the water be for tea?"])[0]
    cos_minilm = (
        embedder.minilm.embed(PASSAGES) @ embedder.minilm.embed_queries(["How hot should the water be for tea?"])[0]
    )
    assert np.allclose(english @ passages.T, (cos_use + cos_minilm) / 2, atol=1e-4)


class _Incomplete:
    def embed(self, texts):
        return texts


def test_the_default_embedder_indexes_through_minilms_int8_copy(embedder):
    """Passages being indexed go through MiniLM's int8 copy (USE as always): unit vectors close
    to the fp32 ones, and the index records both encoders."""
    indexed, exact = embedder.embed_documents(PASSAGES), embedder.embed(PASSAGES)
    assert indexed.shape == exact.shape == (5, 896)
    assert np.allclose(np.linalg.norm(indexed, axis=1), 1.0, atol=1e-4)
    assert (indexed * exact).sum(axis=1).min() >= 0.995
    assert np.allclose(indexed[:, :512], exact[:, :512], atol=1e-6)
    assert embedder.document_encoder_name.startswith("use-multilingual-v3 + ")


def test_names_and_import_paths():
    assert embedder_class("all-MiniLM-L6-v2") is None
    assert embedder_class("sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2") is None
    assert isinstance(make_embedder(Settings.load(env={})), embedder_class("use-m3+minilm-l6"))
    assert isinstance(
        make_embedder(Settings.load(env={}, overrides={"embed_model": "all-MiniLM-L6-v2"})), SentenceTransformerEmbedder
    )
    own = embedder_class("rag.embedders.use_multilingual:UseMultilingualEmbedder")
    assert own is embedder_class("use-multilingual-v3")
    with pytest.raises(ConfigError, match="lacks dimension"):
        embedder_class("tests.embedding.test_embedders:_Incomplete")
    with pytest.raises(ConfigError, match="cannot import"):
        embedder_class("no_such_module:Embedder")
