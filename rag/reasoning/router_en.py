"""The router's rules for English questions: the shapes it recognises ("Who was born earlier, A
or B?", "How many years after A was B?", "Are A and B both ...?") as patterns, the helpers that cut
the two names and the attribute out of a question, and the question each hop asks of one entity."""

from __future__ import annotations

import re

from rag.reasoning.plans import Plan

# English comparatives, by what decides them: a time ("earlier"), a quantity ("larger").
_EARLY = "earlier earliest first older oldest before sooner".split()
_LATE = "later latest last younger youngest newer newest after recent".split()
_MORE = (
    "more most larger largest bigger biggest longer longest taller tallest higher highest greater "
    "greatest heavier heaviest wider widest deeper deepest faster fastest farther further"
).split()
_LESS = (
    "less least fewer fewest smaller smallest shorter shortest lower lowest lighter lightest narrower "
    "slower slowest closer closest cheaper cheapest"
).split()
# The verb a time comparison asks about; "born" and "founded" read as "When was A born?".
EN_AUX = {"is", "was", "are", "were", "did", "does", "do", "has", "have", "had"}
EN_WH = {"which", "who", "what", "whose", "whom"}

_EN_CHOICE = re.compile(
    r"^(?P<head>.*?\b(?:which|who|what|whose)\b.*?)\s*(?:[,:;]|\s[-–—]\s?)\s*(?P<a>[^,?]+?),?\s+or\s+(?P<b>[^,?]+?)\s*[?.]*\s*$",
    re.IGNORECASE,
)
_EN_CHOICE_TAIL = re.compile(  # "Which is older, A or B" without a comma: "Is A or B older?"
    r"^(?:is|was|are|were|did|does|do)\s+(?P<a>.+?)\s+or\s+(?P<b>.+?)\s+(?P<head>(?:the\s+)?\w+(?:\s+\w+)?)\s*\?\s*$",
    re.IGNORECASE,
)
_EN_BOTH = re.compile(
    r"^(?P<aux>are|were|is|was|do|did|does|have|had|has)\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+"
    r"(?P<q>both|each|all|the same|of the same|from the same|in the same)\b\s*(?P<rest>.*?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_BOTH_FIRST = re.compile(  # "Are both A and B American musicians?"
    r"^(?P<aux>are|were|do|did|have|had)\s+both\s+(?P<pair>.+?)\s*\?*\s*$", re.IGNORECASE
)
_EN_BOTH_WHAT = re.compile(  # "The LNW-80 and Amstrad PCW are both what kind of machine?"
    r"^(?:the\s+)?(?P<a>.+?)\s+and\s+(?:the\s+)?(?P<b>.+?)\s+(?:are|were)\s+both\s+(?P<rest>(?:what|which)\b.*?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_SHARED = re.compile(  # "What occupation do A and B share?", "Where are A and B located?"
    r"^(?P<wh>what|which|where|when|in which)\b(?P<noun>.*?)\s+(?:are|were|do|did|is)\s+(?P<a>.+?)\s+and\s+"
    r"(?P<b>.+?)\s+(?P<verb>share|have in common|located|based|from|found)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_CONTRAST = re.compile(  # "What is the difference between A and B?", "How do A and B differ in X?"
    r"^(?:what\s+(?:is|are)\s+the\s+(?:main\s+|key\s+)?(?:differences?|similarities)\s+between\s+(?P<a>.+?)\s+and\s+(?P<b>.+?)"
    r"|how\s+(?:do|does|did)\s+(?P<a2>.+?)\s+and\s+(?P<b2>.+?)\s+(?:differ|compare))"
    r"(?P<rest>\s+(?:in|on|for|regarding|when|as)\b.*?)?\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_BEFORE = re.compile(  # "Was the film X released before the comic book Y?"
    r"^(?P<aux>was|were|is|did|does)\s+(?P<a>.+?)\s+(?P<verb>\w+)\s+(?P<rel>before|after|earlier than|later than)\s+"
    r"(?P<b>.+?)\s*\?*\s*$",
    re.IGNORECASE,
)
_EN_ARITH = re.compile(
    r"\bhow\s+(?:many|much)\s+(?P<unit>years?|months?|days?|hours?|minutes?|\w+)?\s*"
    r"(?P<rel>after|before|between|apart|earlier|later|older|younger|more|less|fewer|longer|shorter|"
    r"higher|lower|larger|smaller|in total|combined|altogether|passed|elapsed)\b",
    re.IGNORECASE,
)
_EN_DIFF = re.compile(r"\b(?:difference|differ)\b", re.IGNORECASE)
_EN_TOTAL = re.compile(r"\b(?:in total|combined|altogether|total|sum)\b", re.IGNORECASE)
_EN_RATIO = re.compile(r"\bhow many times\b|\bratio\b", re.IGNORECASE)
_EN_RESPECTIVELY = re.compile(r"\brespectively\b|\beach of\b", re.IGNORECASE)
_EN_PAIR = re.compile(
    r"\b(?P<prep>between|of|for|in|at|by)\s+(?P<a>[^,?]+?)\s+and\s+(?P<b>[^,?]+?)(?:\s+respectively)?\s*\??\s*$",
    re.IGNORECASE,
)
_EN_THAN = re.compile(r"^(?P<pre>.*?)\b(?P<a>[A-Z][^,?]*?)\s+(?:\w+\s+){0,3}?than\s+(?P<b>[^,?]+?)\s*\??\s*$")


def _direction_en(words: list[str]) -> str:
    lowered = [w.lower() for w in words]
    for word in lowered:
        if word in _EARLY:
            return "early"
        if word in _LATE:
            return "late"
    for word in lowered:
        if word in _MORE:
            return "more"
        if word in _LESS:
            return "less"
    return ""


def route_en(question: str) -> Plan | None:
    """The plan of an English question of one of the shapes above, its entities not yet cleaned;
    ``None`` when none fits."""
    contrast = _EN_CONTRAST.match(question)
    if contrast and not _EN_ARITH.search(question):
        return Plan(
            "contrast",
            [contrast.group("a") or contrast.group("a2"), contrast.group("b") or contrast.group("b2")],
            attribute=_attribute_en(contrast.group("rest") or ""),
        )
    arithmetic = _EN_ARITH.search(question) or _EN_DIFF.search(question) or _EN_RATIO.search(question)
    if arithmetic:
        pair = _EN_PAIR.search(question) or _EN_THAN.search(question)
        if pair:
            operation = "ratio" if _EN_RATIO.search(question) else "sum" if _EN_TOTAL.search(question) else "difference"
            head = question[: pair.start("a")]
            return Plan(
                "arithmetic",
                [pair.group("a"), pair.group("b")],
                attribute=_attribute_en(head),
                operation=operation,
                direction=_direction_en(head.split()),
            )
    match = _EN_BOTH_WHAT.match(question)
    if match:
        return Plan("both", [match.group("a"), match.group("b")], attribute=match.group("rest"), operation="common")
    match = _EN_SHARED.match(question)
    if match:
        wh, noun, verb = match.group("wh").lower(), match.group("noun").strip(), match.group("verb").lower()
        if wh == "where" or verb in ("located", "based", "from", "found"):
            attribute = f"where {verb}"
        else:
            attribute = f"{wh} {noun}".strip()
        return Plan("both", [match.group("a"), match.group("b")], attribute=attribute, operation="common")
    match = _EN_BOTH_FIRST.match(question)
    if match:
        split = _split_names_en(match.group("pair"))
        if split:
            return Plan("both", [split[0], split[1]], attribute=split[2], operation="all")
    match = _EN_BEFORE.match(question)
    if match:
        rel = match.group("rel").lower()
        return Plan(
            "comparison",
            [match.group("a"), match.group("b")],
            attribute=match.group("verb"),
            direction="early" if rel in ("before", "earlier than") else "late",
            operation="yes-no",
        )
    match = _EN_BOTH.match(question)
    if match:
        rest = match.group("rest")
        return Plan(
            "both",
            [match.group("a"), match.group("b")],
            attribute=rest,
            operation="same" if "same" in match.group("q").lower() else "all",
        )
    match = _EN_CHOICE.match(question) or _EN_CHOICE_TAIL.match(question)
    # Two things to choose from are names, a few words each; "Were the tapes restored ... or did
    # they lose ..." chooses between two statements, which is one question.
    if match and all(len(match.group(g).split()) <= 6 for g in ("a", "b")):
        head = match.group("head")
        return Plan(
            "comparison",
            [match.group("a"), match.group("b")],
            attribute=_attribute_en(head),
            direction=_direction_en(head.split()),
        )
    if _EN_RESPECTIVELY.search(question):
        pair = _EN_PAIR.search(question)
        if pair and "prep" in pair.groupdict():
            return Plan(
                "aggregation",
                [pair.group("a"), pair.group("b")],
                attribute=_attribute_en(question[: pair.start("prep")]),
                operation=pair.group("prep").lower(),
            )
    return None


_NAME_JOINERS = {"of", "the", "de", "van", "von", "da", "del", "la", "le", "and", "&"}


def _split_names_en(text: str) -> tuple[str, str, str] | None:
    """ "Joel Madden and Paul Baloff American punk rock singers" -> the two names and the rest:
    the second name is the run of capitalised words after "and" (a lower-case word ends it)."""
    first, sep, after = text.partition(" and ")
    if not sep or not first:
        return None
    words = after.split()
    end = 0
    while end < len(words) and (
        words[end][:1].isupper()
        or words[end][:1].isdigit()
        or (words[end].lower() in _NAME_JOINERS - {"and"} and end + 1 < len(words) and words[end + 1][:1].isupper())
    ):
        end += 1
    # A name is followed by what is asked; an adjective of nationality is capitalised too, so the
    # last capitalised word goes to the rest when it is followed by lower-case words.
    if end == len(words) or end == 0:
        return None
    if end >= 2 and words[end - 1].endswith(("an", "ish", "ese", "ic", "i")) and words[end][:1].islower():
        end -= 1
    return first, " ".join(words[:end]), " ".join(words[end:])


def _attribute_en(head: str) -> str:
    """The question's words about the attribute: no question word, auxiliary or comparative."""
    drop = (
        EN_WH
        | EN_AUX
        | set(_EARLY)
        | set(_LATE)
        | set(_MORE)
        | set(_LESS)
        | {
            "how",
            "many",
            "much",
            "the",
            "a",
            "an",
            "than",
            "respectively",
            "between",
            "of",
            "in",
            "there",
            "difference",
            "and",
            "or",
            "both",
            "each",
            "ratio",
            "times",
            "total",
            "combined",
            "altogether",
            "one",
        }
    )
    words = [w.strip(",.?:;") for w in head.split()]
    return " ".join(w for w in words if w and w.lower() not in drop)


def sub_question_en(plan: Plan, entity: str) -> str:
    """The English question one hop asks about ``entity`` ("When was A founded?")."""
    attribute = plan.attribute
    if plan.kind == "both":
        tail = attribute.strip() or "described"
        if plan.operation == "common":
            if tail.startswith("where "):  # "Where is A located?"
                return f"Where is {entity} {tail[6:]}?"
            return f"{tail[:1].upper()}{tail[1:]} is {entity}?"
        return f"Is {entity} {tail}?" if plan.operation == "all" else f"What is the {tail} of {entity}?"
    if plan.direction in ("early", "late") or re.search(r"\b(year|born|founded|date|when)\b", attribute, re.I):
        verb = attribute or "founded"
        return f"When was {entity} {verb}?"
    if plan.kind == "arithmetic" or plan.direction in ("more", "less"):
        return f"How many {attribute} {entity}?" if attribute else f"How many for {entity}?"
    if plan.kind == "contrast":
        return f"What is the {attribute} of {entity}?" if attribute else f"What is {entity}?"
    if plan.kind == "aggregation" and attribute:  # "What is the hotel limit in London?"
        prep = plan.operation if plan.operation != "between" else "of"
        if attribute.endswith("s") and not attribute.endswith("ss"):  # "the hotel limits" of each
            attribute = attribute[:-1]
        return f"What is the {attribute} {prep} {entity}?"
    return f"{attribute} {entity}?".strip() if attribute else f"What about {entity}?"
