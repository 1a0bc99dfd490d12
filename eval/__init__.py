"""Evaluation: run a QA set through the answer pipeline (or a running server) and score it.

The harness reads as its modules do: ``dataset`` (the JSONL QA set) -> ``run`` (answer every
question, resumably) -> ``metrics`` and ``faithfulness`` (score each answer) -> ``report``
(results.jsonl, summary.json, report.html, a console table). ``judge_check`` measures how well
the offline faithfulness judge separates supported from unsupported sentences.
"""
