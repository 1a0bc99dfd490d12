"""Bridge plans: a question about something named only by its relation to another ("Where was
the author of X born?", "X的负责人在几楼办公？") is asked in two hops, who or what the relation
names, then the question about that."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.reasoning.router_en import EN_AUX, EN_WH
from rag.text import detect_language
from rag.text.tokens import tagged_words

# Nouns that name one thing by its relation to another: "the author of X", "X的作者". The
# question is then asked in two hops: who or what that is, and the question about it.
_PERSON_ROLES = (
    "author writer founder co-founder creator director producer winner president ceo co-ceo chairman "
    "chairwoman owner composer singer star host captain coach manager father mother son daughter wife "
    "husband brother sister successor predecessor designer architect inventor publisher editor "
    "narrator leader mayor governor head member player actor actress champion builder"
).split()
_THING_ROLES = (
    "headquarters capital birthplace company team band school university city country developer "
    "manufacturer label studio network department"
).split()
_ROLE_WORDS = "|".join(sorted(_PERSON_ROLES + _THING_ROLES, key=len, reverse=True))
_EN_ROLE_OF = re.compile(
    rf"\bthe\s+(?P<role>(?:(?!(?:of|the|a|an|and|or|in|at|for)\b)[\w'’-]+\s+){{0,3}}?(?:{_ROLE_WORDS}))\s+"
    r"(?P<prep>of|for|behind)\s+"
    r"(?P<np>[^,?]+?)(?=\s+(?:born|located|based|founded|established|built|released|published|died|educated|"
    r"married|named|known|called|made|formed|opened|created|designed|written|directed|produced|situated|"
    r"headquartered)\b|\s+(?:who|which|that|where|when|whose)\b|[,?]|\s*$)",
    re.IGNORECASE,
)
_ZH_PERSON_ROLES = (
    "作者 创始人 创办人 导演 校长 院长 负责人 总经理 董事长 发明者 发明人 设计者 设计师 主编 主席 "
    "父亲 母亲 丈夫 妻子 儿子 女儿 老师 主管 经理 馆长 主任 部长"
).split()
_ZH_THING_ROLES = "首都 总部 所在地 出生地 部门 公司 学校 城市 国家 单位 机构".split()
_ZH_ROLE_OF = re.compile(
    rf"^(?P<np>[^，,？?]+?)的(?P<role>{'|'.join(sorted(_ZH_PERSON_ROLES + _ZH_THING_ROLES, key=len, reverse=True))})"
    r"(?P<rest>(?:是|在|于|出生|位于|叫|有|的|毕业|来自|成立|创办|办公|住).*)$"
)

# "X的那个部门由谁负责？", "X介绍的那种茶原产于哪里？": a demonstrative and a classifier after 的
# say the noun after them is named by the clause before, whatever the noun is.
_ZH_THAT_ONE = re.compile(
    r"^(?P<np>[^，,？?]{2,}?)的(?P<that>(?:那|这)一?(?P<cl>个|种|位|家|本|座|所|部|条|件|款|名))(?P<tail>[\u4e00-\u9fff].*)$"
)
# "用X的读者证，每次最多可以借几本书？": a question about using a thing named by a clause.
_ZH_USING = re.compile(r"^(?:用|持|凭|使用)(?P<np>[^，,？?]{2,}?)的(?P<noun>[^，,？?的]{1,8})[，,](?P<rest>.+)$")
_ZH_ASKS = re.compile(r"谁|什么|哪|多少|几|吗|是否|是不是|如何|怎么")


def _is_clause(text: str) -> bool:
    """Whether ``text`` holds a verb or a coverb: a relative clause ("接收出差申请", "公司给员工
    办理"), not a possessor ("城东社区图书馆", whose "的普通读者证" is a name already found)."""
    return any(flag.startswith("v") or flag == "p" for _, flag in tagged_words(text))


def _zh_relative_bridge(question: str) -> BridgePlan | None:
    """The bridge of a Chinese question whose thing is named by a relative clause (the two
    shapes above): hop 1 asks what the clause names, hop 2 asks the question about it."""
    match = _ZH_THAT_ONE.match(question)
    if match and _is_clause(match.group("np")):
        words = tagged_words(match.group("tail"))
        if not words or not words[0][1].startswith("n"):
            return None
        noun = words[0][0]
        rest = match.group("tail")[len(noun) :]
        if not _ZH_ASKS.search(rest):
            return None
        np = match.group("np")
        ask = "谁" if noun in _ZH_PERSON_ROLES or match.group("cl") in ("位", "名") else "什么"
        phrase = f"{np}的{match.group('that')}{noun}"
        return BridgePlan(f"{np}的{noun}是{ask}？", f"{np} {noun}", phrase, question, "zh", np, noun)
    match = _ZH_USING.match(question)
    if match and _is_clause(match.group("np")) and _ZH_ASKS.search(match.group("rest")):
        np, noun = match.group("np"), match.group("noun")
        phrase = f"{np}的{noun}"
        return BridgePlan(f"{np}的{noun}是什么？", f"{np} {noun}", phrase, question, "zh", np, noun)
    return None


# A relation at the end of the question after one of these is what the question asks for.
_ASKED_BY = {
    "be",
    "is",
    "was",
    "were",
    "are",
    "become",
    "became",
    "as",
    "named",
    "appointed",
    "elected",
    "hired",
    "called",
    "crowned",
}


@dataclass
class BridgePlan:
    """A question about something named only by its relation to another ("the author of X"):
    hop 1 asks what it is, hop 2 asks the question about what hop 1 found."""

    first_question: str  # "Who is the author of the Orion report?"
    query: str  # what hop 1 searches with
    phrase: str  # the words of the question that hop 1's finding replaces
    question: str  # the whole question
    language: str = "en"
    named: str = ""  # what the relation is of ("the Orion report")
    role: str = ""  # the relation ("author")

    def second_question(self, finding: str) -> str:
        """The question with the relation's words replaced by what hop 1 found."""
        return self.question.replace(self.phrase, finding, 1)


def bridge_plan(question: str, language: str | None = None) -> BridgePlan | None:
    """The two hops of a question that names something by its relation to another; ``None``
    for any other question."""
    question = " ".join((question or "").split())
    language = language or detect_language(question)
    if language == "zh":
        match = _ZH_ROLE_OF.match(question.rstrip("？?。"))
        if not match:
            return _zh_relative_bridge(question)
        np, role = match.group("np"), match.group("role")
        # "X的作者是谁？" asks for the relation itself: one hop.
        if len(np) < 2 or re.match(
            r"^(?:(?:是|为)(?:谁|什么|哪|多少|何)|在(?:哪|什么地方|何处)|叫什么|位于|是哪)", match.group("rest")
        ):
            return None
        ask = "谁" if role in _ZH_PERSON_ROLES else "什么"
        return BridgePlan(f"{np}的{role}是{ask}？", f"{np} {role}", f"{np}的{role}", question, "zh", np, role)
    match = _EN_ROLE_OF.search(question)
    if not match:
        return None
    role, np = match.group("role").strip(), match.group("np").strip()
    words = np.split()
    # What hop 1 looks up must be named: "the Orion report", "1995"; not "a company", "the film",
    # and not the question's own unknown ("the co-founder of what outlet").
    if (
        not any(w[:1].isupper() or w[:1].isdigit() for w in words)
        or words[0].lower() in ("a", "an")
        or any(w.lower() in ("what", "which", "who", "whom", "whose") for w in words)
    ):
        return None
    head = role.split()[-1]
    if head[:1].isupper():  # "the University of West Florida" is a name, not a relation
        return None
    ask = "Who" if head.lower() in _PERSON_ROLES else "What"
    phrase = question[match.start() : match.end()].strip()
    before = question[: match.start()].split()
    after = question[match.end() :].strip(" ?.!")
    # "Who was hired to be the director of X?" asks for the relation itself; "the nickname of
    # the winner of X" asks about what the relation names.
    if not after and before and before[-1].lower() in _ASKED_BY:
        return None
    rest = question.replace(phrase, " ", 1)
    # "Who is the author of X?" asks for the relation itself: one hop.
    if len([w for w in re.findall(r"[\w'’-]+", rest) if w.lower() not in EN_WH | EN_AUX | {"the", "name", "of"}]) < 1:
        return None
    return BridgePlan(
        f"{ask} is the {role} {match.group('prep')} {np}?", f"{role} {np}", phrase, question, "en", np, role
    )


def inner_bridge(plan: BridgePlan) -> BridgePlan | None:
    """The relation inside a relation: for "Who is the wife of the author of X?", the plan
    of "the author of X" (whose finding then stands in for it). English only: in Chinese the
    inner relation comes first ("X的作者的妻子"), and the question that follows is planned again."""
    if plan.language != "en" or not plan.named:
        return None
    match = _EN_ROLE_OF.search(plan.named)
    if not match or match.start() > 4:  # "the author of X" must be the whole of it
        return None
    role, np = match.group("role").strip(), match.group("np").strip()
    if not any(w[:1].isupper() or w[:1].isdigit() for w in np.split()) or role.split()[-1][:1].isupper():
        return None
    ask = "Who" if role.split()[-1].lower() in _PERSON_ROLES else "What"
    phrase = plan.named[match.start() : match.end()].strip()
    return BridgePlan(
        f"{ask} is the {role} {match.group('prep')} {np}?", f"{role} {np}", phrase, plan.first_question, "en", np, role
    )
