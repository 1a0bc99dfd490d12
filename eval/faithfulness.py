"""Is each sentence of an answer supported by the passages it was generated from?

No NLI model runs offline here, so the default judge is lexical, and its accuracy is measured
rather than assumed (``python -m eval.judge_check``). For each answer sentence it looks at
windows of two consecutive sentences of each passage and asks:

* hard facts: every number, every capitalised name inside an English sentence, every Latin
  word inside a Chinese sentence and every 《title》 must occur in the window;
* nothing new: no two content tokens in a row may be missing from both the window and the
  question (a fabricated fact is a run of words the sources never used; one paraphrased word
  is tolerated). Chinese characters count as found only inside a character pair the window
  has, since single characters match almost anything;
* coverage: the share of the sentence's content tokens, averaged with the share of its
  adjacent token pairs, found in the window (English: lowercased, lightly stemmed words
  without function words; Chinese: characters without function characters).

A window failing either of the first two checks scores 0; a sentence scores its best window
over all passages and is supported when that reaches the threshold for its language
(calibrated on a labelled sample built from the shared XQuAD and CMRC 2018 sets).
Faithfulness is the share of supported sentences; citation precision is the share of cited
passages that on their own support the sentence citing them.

An LLM judge (claim extraction, then a yes/no check of each claim) is available for any
generator with ``generate(messages, max_new_tokens, stop) -> result.text``; it is reported
under its own name because its numbers are not comparable with the lexical judge's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from eval.metrics import CITATION_RE
from rag.text import detect_language, has_cjk, normalize, scoring_tokens, split_sentences

# Calibrated with `python -m eval.judge_check` (best balanced accuracy per language on the
# calibration half of the labelled sample; the check reports accuracy on the held-out half).
DEFAULT_THRESHOLDS: dict[str, float] = {"en": 0.4, "zh": 0.6}
DEFAULT_WINDOW = 2  # passage sentences per window
MAX_NOVEL_RUN = 1  # content tokens in a row that may be found neither in the window nor the question

_FUNCTION_WORDS_RAW = """a an the and or but if of at by for with about into through during before after above
    below to from up down in out on off over under then once here there when where why how all
    any both each few more most other some such no nor not only own same so than too very can
    will just should now is are was were be been being have has had having do does did doing
    i me my we our you your he him his she her it its they them their what which who whom whose
    this that these those am would could may might must shall also as s t
    according document documents passage passages context source sources text answer based
    provided mentioned stated states says said question yes""".split()
_FUNCTION_CHARS_ZH = frozenset("的了是在和与及也就都而之其于为被把这那个有中对以或等由哪什么谁吗呢啊几怎样何即")
# Phrases a grounded answer opens with that say nothing about the world.
_BOILERPLATE_ZH_RE = re.compile(
    r"(根据|依据|按照)?(所给|提供的|以上|上述)?(文档|资料|材料|段落|上下文|参考资料|信息)(中|里|显示|所述|提到)?[，,：:]?"
)
_TITLE_RE = re.compile(r"《([^》]+)》")
_CAPITALISED_RE = re.compile(r"\b[A-Z][\w'’-]*")
_DIGIT_RE = re.compile(r"\d")


def _stem(word: str) -> str:
    """A crude English suffix stripper, so 'sacks' matches 'sack' and 'founded' matches 'found'."""
    if not word.isascii() or len(word) <= 3:
        return word
    for suffix, repl in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


# Stemmed too, since tokens are compared after stemming ("this" -> "thi").
_FUNCTION_WORDS_EN = frozenset(w for word in _FUNCTION_WORDS_RAW for w in (word, _stem(word)))


def _tokens(text: str) -> list[str]:
    return [_stem(t) for t in scoring_tokens(text)]


def _is_content(token: str) -> bool:
    if len(token) == 1 and has_cjk(token):
        return token not in _FUNCTION_CHARS_ZH
    return token not in _FUNCTION_WORDS_EN


def _pairs(tokens: Sequence[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(tokens, tokens[1:]) if _is_content(a) or _is_content(b)]


def _window_of(text: str) -> _Window:
    toks = _tokens(text)
    return _Window(normalize(text), frozenset(toks), frozenset(zip(toks, toks[1:])))


def _novel_run(tokens: Sequence[str], window: _Window, given: _Window | None) -> list[str]:
    """The longest run of content tokens found neither in the window nor in ``given``."""
    best: list[str] = []
    run: list[str] = []
    for i, tok in enumerate(tokens):
        if not _is_content(tok):
            continue
        if len(tok) == 1 and has_cjk(tok):
            found = any(
                (i > 0 and (tokens[i - 1], tok) in w.pairs) or (i + 1 < len(tokens) and (tok, tokens[i + 1]) in w.pairs)
                for w in (window, given)
                if w is not None
            )
        else:
            found = tok in window.tokens or (given is not None and tok in given.tokens)
        run = [] if found else [*run, tok]
        if len(run) > len(best):
            best = run
    return best


@dataclass
class _Window:
    text: str  # normalised, for substring checks
    tokens: frozenset[str]
    pairs: frozenset[tuple[str, str]]


@dataclass
class _Claim:
    """What the judge needs from one answer sentence."""

    lang: str
    sequence: list[str]  # all tokens, in order
    content: list[str]
    pairs: list[tuple[str, str]]
    facts: list[str]  # tokens that must occur
    titles: list[str]  # normalised 《titles》 that must occur as text


@dataclass
class Support:
    """How well one passage supports one sentence."""

    score: float  # coverage of the best window passing the checks, else 0
    coverage: float = 0.0  # best coverage over all windows, checks aside
    missing: list[str] = field(default_factory=list)  # hard facts the best window lacks
    novel: list[str] = field(default_factory=list)  # longest run of tokens found nowhere


@dataclass
class SentenceVerdict:
    text: str
    supported: bool | None  # None: nothing to judge (no content words)
    score: float
    passage: int | None  # 0-based index of the best passage
    citations: list[int] = field(default_factory=list)
    cited_support: dict[int, bool] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    novel: list[str] = field(default_factory=list)


@dataclass
class FaithfulnessResult:
    score: float | None  # share of judged sentences supported; None if none judged
    citation_precision: float | None
    sentences: list[SentenceVerdict]
    judge: str = "lexical"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def answer_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """The answer's sentences without citation markers, each with the numbers it cites.

    A marker standing after the full stop ("... points. [1]") belongs to the sentence before it.
    """

    def numbers(text: str) -> list[int]:
        return [int(n) for m in CITATION_RE.finditer(text) for n in re.split(r"\D+", m.group(1)) if n]

    out: list[tuple[str, list[int]]] = []
    for piece in split_sentences(answer):
        # Markers at the very start of a piece close the sentence before it.
        lead = re.match(rf"(?:{CITATION_RE.pattern})+", piece)
        if lead and out:
            out[-1][1].extend(n for n in numbers(lead.group(0)) if n not in out[-1][1])
            piece = piece[lead.end() :]
        text = CITATION_RE.sub("", piece).strip()
        if text:
            out.append((text, list(dict.fromkeys(numbers(piece)))))
    return out


class LexicalJudge:
    """The offline default: lexical support of each sentence by a window of a passage."""

    name = "lexical"

    def __init__(
        self,
        thresholds: Mapping[str, float] | float | None = None,
        window: int = DEFAULT_WINDOW,
        max_novel_run: int = MAX_NOVEL_RUN,
    ) -> None:
        if thresholds is None:
            thresholds = DEFAULT_THRESHOLDS
        elif isinstance(thresholds, (int, float)):
            thresholds = {"en": float(thresholds), "zh": float(thresholds)}
        self.thresholds = {**DEFAULT_THRESHOLDS, **thresholds}
        self.window = max(1, window)
        self.max_novel_run = max_novel_run
        self._cache: dict[str, tuple[_Window, list[_Window]]] = {}

    # -- building blocks ------------------------------------------------------------------

    def _windows(self, passage: str) -> tuple[_Window, list[_Window]]:
        """The whole passage, and its windows of consecutive sentences."""
        cached = self._cache.get(passage)
        if cached is not None:
            return cached
        sentences = [s for s in split_sentences(passage) if s.strip()] or [passage]
        starts = range(max(1, len(sentences) - self.window + 1))
        windows = [_window_of("".join(sentences[i : i + self.window])) for i in starts]
        if len(self._cache) > 4096:  # passages repeat within a run; keep memory bounded
            self._cache.clear()
        self._cache[passage] = (_window_of(passage), windows)
        return self._cache[passage]

    @staticmethod
    def _claim(sentence: str) -> _Claim:
        lang = detect_language(sentence)
        text = _BOILERPLATE_ZH_RE.sub("", sentence) if has_cjk(sentence) else sentence
        toks = _tokens(text)
        facts = [t for t in toks if _DIGIT_RE.search(t)]
        if lang == "zh":
            facts += [t for t in toks if not has_cjk(t) and t.isalpha() and _is_content(t)]
        else:
            # Capitalised words are names, except the sentence's first word (capitalised anyway).
            first = re.search(r"\w", text)
            for m in _CAPITALISED_RE.finditer(text):
                if first is not None and m.start() == first.start():
                    continue
                facts.extend(t for t in _tokens(m.group(0)) if _is_content(t))
        titles = [normalize(t) for t in _TITLE_RE.findall(text)]
        content = [t for t in toks if _is_content(t)]
        return _Claim(lang, toks, content, _pairs(toks), list(dict.fromkeys(facts)), titles)

    def _score(self, claim: _Claim, window: _Window, given: _Window | None, whole: _Window) -> Support:
        # A name or number the question already holds sets the topic: the passage must hold it
        # somewhere. Any other hard fact must sit in the window, next to the rest of the claim.
        missing = [
            f
            for f in claim.facts
            if f not in window.tokens and not (given is not None and f in given.tokens and f in whole.tokens)
        ]
        missing += [f"《{t}》" for t in claim.titles if t not in window.text]
        novel = _novel_run(claim.sequence, window, given)
        uni = sum(1 for t in claim.content if t in window.tokens) / len(claim.content)
        bi = sum(1 for p in claim.pairs if p in window.pairs) / len(claim.pairs) if claim.pairs else uni
        coverage = (uni + bi) / 2
        failed = bool(missing) or len(novel) > self.max_novel_run
        return Support(0.0 if failed else coverage, coverage, missing, novel if failed else [])

    def _best(self, claim: _Claim, passage: str, given: _Window | None) -> Support:
        whole, windows = self._windows(passage)
        best: Support | None = None
        for window in windows:
            s = self._score(claim, window, given, whole)
            # The highest score; among failing windows, the most covered one explains the failure.
            if best is None or (s.score, s.coverage) > (best.score, best.coverage):
                best = s
        return best or Support(0.0)

    # -- public API -----------------------------------------------------------------------

    def threshold_for(self, sentence: str) -> float:
        return self.thresholds[detect_language(sentence)]

    def support(self, sentence: str, passage: str, question: str | None = None) -> Support:
        """How well one passage supports one sentence (the best of its windows).

        Words the sentence shares with ``question`` may be absent from the passage without
        counting as new (answers restate the question in their own words).
        """
        claim = self._claim(sentence)
        if not claim.content:
            return Support(1.0, 1.0)
        return self._best(claim, passage, _window_of(question) if question else None)

    def supports(self, sentence: str, passage: str, question: str | None = None) -> bool:
        return self.support(sentence, passage, question).score >= self.threshold_for(sentence)

    def judge(
        self,
        answer: str,
        passages: Sequence[str],
        cited: Mapping[int, str] | None = None,
        question: str | None = None,
    ) -> FaithfulnessResult:
        """Judge every sentence of ``answer`` against ``passages``.

        ``cited`` maps a citation number to the passage text it refers to; numbers an answer
        cites that are missing from it count as citations that support nothing.
        """
        cited = cited or {}
        given = _window_of(question) if question else None
        verdicts: list[SentenceVerdict] = []
        pairs_total = pairs_ok = 0
        for text, numbers in answer_sentences(answer):
            claim = self._claim(text)
            if not claim.content:
                verdicts.append(SentenceVerdict(text, None, 0.0, None, numbers))
                continue
            threshold = self.thresholds[claim.lang]
            best, best_index = Support(0.0, 0.0, list(claim.facts)), None
            for i, passage in enumerate(passages):
                s = self._best(claim, passage, given)
                if best_index is None or (s.score, s.coverage) > (best.score, best.coverage):
                    best, best_index = s, i
            ok = best.score >= threshold
            verdict = SentenceVerdict(
                text,
                ok,
                round(best.score, 4),
                best_index,
                numbers,
                missing=[] if ok else best.missing,
                novel=[] if ok else best.novel,
            )
            for n in numbers:
                supported = n in cited and self._best(claim, cited[n], given).score >= threshold
                verdict.cited_support[n] = supported
                pairs_total += 1
                pairs_ok += supported
            verdicts.append(verdict)
        judged = [v for v in verdicts if v.supported is not None]
        score = sum(1 for v in judged if v.supported) / len(judged) if judged else None
        precision = pairs_ok / pairs_total if pairs_total else None
        return FaithfulnessResult(score, precision, verdicts, self.name)


# --- optional LLM judge --------------------------------------------------------------------


class TextGenerator(Protocol):
    def generate(self, messages: list[dict[str, str]], max_new_tokens: int, stop: list[str] | None) -> Any: ...


_CLAIMS_PROMPT = (
    "Split the answer below into short, self-contained factual claims, one per line, in the "
    "answer's language. Write only the claims, no numbering, nothing else.\n\nAnswer:\n{answer}"
)
_VERIFY_PROMPT = (
    "Passages:\n{passages}\n\nClaim: {claim}\n\nIs the claim fully supported by the passages "
    "above? Reply with one word: yes or no."
)
_YES_RE = re.compile(r"^\W*(yes|true|supported|是|支持|对)", re.IGNORECASE)


@dataclass
class LLMJudgeResult:
    score: float | None
    claims: list[dict[str, Any]]
    judge: str = "llm"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LLMJudge:
    """Claim extraction and per-claim verification by a generator (slow; opt-in)."""

    name = "llm"

    def __init__(self, generator: TextGenerator, max_claims: int = 8, passage_chars: int = 6000) -> None:
        self.generator = generator
        self.max_claims = max_claims
        self.passage_chars = passage_chars

    def _ask(self, prompt: str, max_new_tokens: int) -> str:
        result = self.generator.generate([{"role": "user", "content": prompt}], max_new_tokens, None)
        return getattr(result, "text", result if isinstance(result, str) else "") or ""

    def claims(self, answer: str) -> list[str]:
        raw = self._ask(_CLAIMS_PROMPT.format(answer=CITATION_RE.sub("", answer).strip()), 256)
        lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)、])\s*", "", line).strip() for line in raw.splitlines()]
        claims = [line for line in lines if len(line) > 1]
        # A model that ignores the format still leaves the answer's own sentences to check.
        return (claims or [s for s, _ in answer_sentences(answer)])[: self.max_claims]

    def judge(self, answer: str, passages: Sequence[str]) -> LLMJudgeResult:
        context = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages, start=1))[: self.passage_chars]
        rows = []
        for claim in self.claims(answer):
            reply = self._ask(_VERIFY_PROMPT.format(passages=context, claim=claim), 4)
            rows.append({"claim": claim, "supported": bool(_YES_RE.match(reply)), "reply": reply.strip()})
        score = sum(r["supported"] for r in rows) / len(rows) if rows else None
        return LLMJudgeResult(score, rows)


__all__ = [
    "DEFAULT_THRESHOLDS",
    "LexicalJudge",
    "LLMJudge",
    "Support",
    "SentenceVerdict",
    "FaithfulnessResult",
    "LLMJudgeResult",
    "answer_sentences",
]
