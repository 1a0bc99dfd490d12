"""The router's rules for Chinese questions: the shapes it recognises ("A和B哪个更早？",
"A比B早多少年？", "A和B都是…吗？") as patterns, the helpers that cut the two names and the
attribute out of a question, and the question each hop asks of one entity."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.reasoning.plans import Plan

_ZH_EARLY = ("早", "先", "老", "久")
_ZH_LATE = ("晚", "后", "新")
_ZH_MORE = ("多", "大", "高", "长", "贵", "重", "远", "宽", "深", "快", "强")
_ZH_LESS = ("少", "小", "低", "短", "便宜", "轻", "近", "窄", "浅", "慢", "弱")

_ZH_SEP = r"(?:和|与|跟|及|、|还是)"
# Where the second entity ends: its attribute ("的…"), or the words that ask.
_ZH_ASK = (
    r"的|在|哪|谁|都|均|是不是|是否|分别|各(?:是|为|有|自)|相差|差|一共|总共|合计|加起来|总计|相同|一样|同一|一致|比较|相比|两者|二者"
    r"|[，,]|(?:更|较)|(?:谁|哪)"
)
_ZH_SECOND = re.compile(rf"(?P<b>[^，,？?]+?)(?=(?:{_ZH_ASK}))(?P<rest>.*)$")
_ZH_CONTRAST = re.compile(
    r"(?:共同|不同|相同|相似|共通|重合)(?:点|之处|性)|差异性|相似性|区别|差异|异同|差别|共同|不同|相似|对比|相比之下"
)


@dataclass
class _Pair:
    """The two names of a Chinese question and the words after the second."""

    a: str
    b: str
    rest: str


def _zh_pair(question: str) -> _Pair | None:
    """The two things a Chinese question names: "A和B…" where A and B may hold 与/和 themselves
    ("数学与应用数学专业与数据计算及应用专业"): of the places the question could be split, one where
    both sides end alike ("…专业", "…专业") is taken, else the first."""
    candidates = []
    for sep in re.finditer(_ZH_SEP, question):
        a, after = question[: sep.start()], question[sep.end() :]
        second = _ZH_SECOND.match(after)
        if not a or not second or re.search(r"[，,比]", a):
            continue
        candidates.append(_Pair(a, second.group("b"), second.group("rest")))
    for pair in candidates:
        pair.b = _ZH_B_TAIL.sub("", pair.b) or pair.b
    for pair in candidates:  # both end alike: "…专业" and "…专业"
        if len(pair.a) >= 3 and len(pair.b) >= 3 and pair.b.endswith(pair.a[-2:]):
            return pair
    for pair in candidates:  # "软件工程专业培养" -> "软件工程专业" + "培养…"
        suffix = pair.a[-2:]
        if len(pair.a) >= 3 and len(pair.b) >= 3 and suffix in pair.b:
            cut = pair.b.rfind(suffix) + len(suffix)
            return _Pair(pair.a, pair.b[:cut], pair.b[cut:] + pair.rest)
    return candidates[0] if candidates else None


# Words that close the second name without being part of it ("…专业之间有", "…这两门学科").
_ZH_B_TAIL = re.compile(r"(?:这?两(?:门学科|个专业|个|门|者)|二者|之间|有)+$")
_ZH_ATTR_THAN = re.compile(
    r"^(?P<a>[^比，,]+?)的(?P<attr>[^比，,]+?)比(?P<b>[^，,？?]+?)(?:的(?P=attr))?"
    r"(?P<rest>(?:早|晚|多|少|高|低|大|小|长|短|贵|便宜|重|轻|远|近|快|慢).*)$"
)
_ZH_THAN = re.compile(
    r"^(?P<a>[^比，,]+?)比(?P<b>[^，,？?]+?)(?:的(?P<attr>[^，,？?]+?))?"
    r"(?P<rest>(?:早|晚|多|少|高|低|大|小|长|短|贵|便宜|重|轻|远|近|快|慢).*)$"
)
_ZH_WHICH = re.compile(r"哪一种|哪一个|哪个|哪一家|哪家|哪一位|哪位|哪座|哪部|哪本|哪种|哪所|哪款|哪条|哪一项|哪项|谁")
_ZH_ARITH = re.compile(
    r"(?:相差|差|早|晚|多|少|高|低|大|小|长|短|贵|便宜)(?:了)?(?:多少|几)|一共|总共|合计|加起来|总计|共(?:有|计)?多少|几倍|多少倍"
)
_ZH_SUM = re.compile(r"一共|总共|合计|加起来|总计|共")
_ZH_BOTH = re.compile(r"(?:都|均|全都)")
_ZH_SAME = re.compile(r"相同|一样|同一|一致")
_ZH_RESPECTIVELY = re.compile(r"分别|各(?:是|为|有|自)")
_ZH_COMPARATIVE = re.compile(
    r"(?:更|较|比较)?(?:早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久)(?:一些|一点)?$"
)


def _direction_zh(text: str) -> str:
    """ "冲泡水温更高" -> "more": the comparative after 更/较, else the last one in the text."""
    marked = re.search(r"(?:更|较|比较)(早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久)", text)
    candidates = (
        [marked.group(1)]
        if marked
        else re.findall(r"早|晚|先|后|多|少|大|小|高|低|长|短|贵|便宜|重|轻|远|近|快|慢|新|老|久", text)[::-1]
    )
    for word in candidates:
        for words, direction in ((_ZH_EARLY, "early"), (_ZH_LATE, "late"), (_ZH_MORE, "more"), (_ZH_LESS, "less")):
            if word in words:
                return direction
    return ""


def route_zh(question: str) -> Plan | None:
    """The plan of a Chinese question of one of the shapes above, its entities not yet cleaned;
    ``None`` when none fits. A clause before the first comma that names no pair is kept as context."""
    question = question.rstrip("？?。 ")
    if _ZH_ARITH.search(question):
        match = _ZH_ATTR_THAN.match(question) or _ZH_THAN.match(question)
        if match:
            rest = match.group("rest")
            return Plan(
                "arithmetic",
                [match.group("a"), match.group("b")],
                attribute=_attribute_zh(match.group("attr") or ""),
                operation="difference",
                direction=_direction_zh(rest[:1]),
            )
        pair = _zh_pair(question)
        if pair:
            rest = pair.rest
            operation = "ratio" if "倍" in rest else "sum" if _ZH_SUM.search(rest) else "difference"
            return Plan("arithmetic", [pair.a, pair.b], attribute=_attribute_zh(rest), operation=operation)
    pair = _zh_pair(question)
    if pair is None and "，" in question:
        # "在城东社区图书馆，纸质图书和电子书哪一种…": the clause before the comma is context.
        context, _, tail = question.partition("，")
        plan = route_zh(tail)
        if plan is not None:
            plan.context = re.sub(r"^(?:在|按|根据|对于|关于)", "", context)
        return plan
    if pair is None:
        return None
    a, b, rest = pair.a, pair.b, pair.rest
    if _ZH_CONTRAST.search(rest):  # "A与B在培养方面有哪些共同点和不同点？"
        return Plan("contrast", [a, b], attribute=_contrast_attribute_zh(rest))
    which = _ZH_WHICH.search(rest)
    # "A和B哪个更早": a which-word and then a comparative; "A和谁商讨" is a question about A alone.
    if (which and re.search(r"更|较|最|先|早|晚|后", rest[which.end() :])) or re.match(r"^(?:比较|相比)", rest):
        attribute = _ZH_WHICH.sub(" ", rest)
        return Plan("comparison", [a, b], attribute=_attribute_zh(attribute), direction=_direction_zh(attribute))
    if _ZH_SAME.search(rest):
        level = re.search(r"(?:同一|相同的?)个?(省)", rest)  # the one level compared by code
        return Plan(
            "both",
            [a, b],
            attribute=_attribute_zh(_ZH_SAME.split(rest)[0]),
            operation="same",
            level=level.group(1) if level else "",
        )
    if re.match(r"(?:是不是|是否)", rest):  # "A和B是不是产于福建": yes only if each passage says so
        return Plan("both", [a, b], attribute=re.sub(r"^(?:是不是|是否)", "", rest), operation="all")
    if _ZH_BOTH.search(rest):
        head, tail = _ZH_BOTH.split(rest, maxsplit=1)
        if re.search(_ZH_SEP, head):
            return None  # "A与B和C都…": more than two things, which no plan here takes
        tail = re.sub(r"(?:吗|嘛|呢|(?<![什怎那这])么)$", "", tail)
        if re.search(r"什么|哪|谁|多少|几", tail):  # "A和B都指什么？": what both are, not yes/no
            return Plan("both", [a, b], attribute=tail, operation="common")
        return Plan("both", [a, b], attribute=tail, operation="all")
    if _ZH_RESPECTIVELY.search(rest):
        return Plan("aggregation", [a, b], attribute=_attribute_zh(_ZH_RESPECTIVELY.sub(" ", rest)))
    return None


def _contrast_attribute_zh(rest: str) -> str:
    """ "在人才培养方面有哪些共同点和不同点" -> "人才培养": what the two are compared in."""
    text = _ZH_CONTRAST.sub(" ", rest)
    text = re.sub(r"(?<=\s)(?:和|及|与)(?=\s)|之间|哪些|有何|何|分别|主要|独特|是什么|什么|有|都", " ", text)
    text = re.sub(r"^\s*在|(?:方面|上|中)\s*$", "", text.strip())
    text = re.sub(r"(?:方面|上|中)(?=\s|$)", "", text)
    return _attribute_zh(text)


def _attribute_zh(text: str) -> str:
    """The words about the attribute, without the comparative, the unit asked for ("多少度")
    or the question words."""
    text = re.sub(r"(?:多少|几)[\u4e00-\u9fff]?$", "", text)
    text = re.sub(r"(?:是不是|是否|相差|相比|比较|是|多少|几|什么|吗|呢|了|有|[，,、：:；;])", " ", text)
    words = []
    for word in re.split(r"[\s的]+", text):
        word = _ZH_COMPARATIVE.sub("", word)
        if word:
            words.append(word)
    return " ".join(words)


def sub_question_zh(plan: Plan, entity: str) -> str:
    """The Chinese question one hop asks about ``entity`` ("A的…是多少？")."""
    attribute = plan.attribute.replace(" ", "")
    if plan.kind == "contrast":
        return f"{entity}的{attribute}有什么特点？" if attribute else f"{entity}有什么特点？"
    if plan.kind == "both" and plan.operation == "all":
        return f"{entity}{attribute or '是什么'}吗？"
    if plan.kind == "both" and plan.operation == "common":
        return f"{entity}{plan.attribute.replace(' ', '')}？"
    if attribute.endswith(("于", "在", "自", "到")):  # "产于" -> "白毫银针产于哪里？"
        return f"{entity}{attribute}哪里？"
    if plan.direction in ("early", "late") and not attribute:
        return f"{entity}是什么时候的？"
    if plan.direction in ("early", "late") and not re.search("年|时间|日期|时候", attribute):
        return f"{entity}是什么时候{attribute}的？"
    return f"{entity}的{attribute}是多少？" if attribute else f"{entity}是什么？"
