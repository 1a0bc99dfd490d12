"""What the router returns: the plan of a question that names two or more entities."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("comparison", "both", "arithmetic", "aggregation", "contrast", "bridge")


@dataclass
class Plan:
    """What the router found: the kind of reasoning and the parts it names."""

    kind: str  # one of KINDS
    entities: list[str] = field(default_factory=list)
    attribute: str = ""  # what is asked of each entity, in the question's words
    direction: str = ""  # comparison/arithmetic: "early", "late", "more", "less"
    operation: str = ""  # arithmetic: "difference", "sum", "ratio"
    sub_questions: list[str] = field(default_factory=list)  # one per entity
    language: str = "en"
    context: str = ""  # words that place the question ("在城东社区图书馆，"), for search
    level: str = ""  # "same" asked at a level of places: "省" ("是不是产于同一个省")

    def to_dict(self) -> dict:
        """The plan as plain data (its language left out)."""
        return {
            "kind": self.kind,
            "entities": list(self.entities),
            "attribute": self.attribute,
            "direction": self.direction,
            "operation": self.operation,
            "sub_questions": list(self.sub_questions),
            "context": self.context,
            "level": self.level,
        }
