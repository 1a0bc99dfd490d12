"""The router: does a question need more than one passage, and which kind of reasoning?

Rules, not a model: they cost microseconds, so a single-hop question pays nothing for the
check, and the kinds they recognise have a fixed shape in both languages:

- ``comparison``: "Who was born earlier, A or B?", "A和B哪个更早？" — one finding per entity,
  then the choice is made by code (dates and numbers compared, or which entity's passage
  states the attribute);
- ``both``: "Are A and B both keyboardists?", "A和B都是…吗？" — yes only if each entity's
  passage states it;
- ``arithmetic``: "How many years after A was B?", "A比B早多少年？" — the values are found
  by reading, the difference, sum or ratio is computed here;
- ``aggregation``: "What are the limits in London and Paris respectively?", "A和B分别是…？" —
  every part answered, each with its citation;
- ``contrast``: "A与B有哪些共同点和不同点？", "How do A and B differ in X?" — what the documents
  say of each, side by side;
- ``bridge`` (:func:`bridge_plan`): "Where was the author of X born?", "X的负责人在几楼办公？" —
  who or what the relation names, then the question about that.

:func:`route` and :func:`bridge_plan` return ``None`` for a question none of the shapes fits; the
stage may still take a second hop when the first one's short answer is not of the kind asked
(:meth:`rag.reasoning.stage.Reasoner.bridged`).

The rules of each language are in :mod:`~rag.reasoning.router_en` and :mod:`~rag.reasoning.router_zh`,
the bridge rules in :mod:`~rag.reasoning.bridge`, the plans in :mod:`~rag.reasoning.plans`; this
module joins them and cleans the entities a rule found.
"""

from __future__ import annotations

import re

from rag.reasoning.bridge import BridgePlan, bridge_plan, inner_bridge
from rag.reasoning.plans import KINDS, Plan
from rag.reasoning.router_en import route_en, sub_question_en
from rag.reasoning.router_zh import route_zh, sub_question_zh
from rag.text import detect_language

# The plans and the bridge rules moved out of this module stay importable from it.
__all__ = ["KINDS", "BridgePlan", "Plan", "bridge_plan", "inner_bridge", "route", "sub_question"]


def route(question: str, language: str | None = None) -> Plan | None:
    """The plan for a question that names two or more things to compare, combine or list;
    ``None`` for any other (which may still turn out to need a bridge hop)."""
    question = " ".join((question or "").split())
    if not question:
        return None
    language = language or detect_language(question)
    plan = route_zh(question) if language == "zh" else route_en(question)
    if plan is None:
        return None
    plan.language = language
    plan.entities = [e for e in (_clean_entity(e, language) for e in plan.entities) if e]
    if len(plan.entities) < 2 or len({e.lower() for e in plan.entities}) < len(plan.entities):
        return None
    plan.sub_questions = [sub_question(plan, e) for e in plan.entities]
    return plan


def sub_question(plan: Plan, entity: str) -> str:
    """The question one hop asks about one entity."""
    return sub_question_zh(plan, entity) if plan.language == "zh" else sub_question_en(plan, entity)


def _clean_entity(text: str, language: str) -> str:
    """The entity without the punctuation, articles and polite openings around it."""
    text = text.strip(" ,，、:：;；?？.。\"'“”‘’")
    if language == "zh":
        text = re.sub(r"^(?:请问|请|那么)", "", text)
        return text.strip()
    text = re.sub(r"^(?:the|both|either)\s+", "", text, flags=re.IGNORECASE)
    return text.strip()
