"""Reasoning over several passages: the router (:mod:`~rag.reasoning.router`) decides whether a
question needs more than one hop and of which kind, the stage (:mod:`~rag.reasoning.stage`) runs
the hops through the answer pipeline, and :mod:`~rag.reasoning.values` computes with what they
found (dates, quantities with units)."""
