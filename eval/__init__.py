"""Evaluation: run a QA set through the answer pipeline (or a running server) and score it.

The harness reads as its modules do: ``dataset`` (the JSONL QA set) -> ``run`` (the command
line) -> ``loop`` (answer every question, resumably, from one of the ``answerers``) -> ``scoring``,
``metrics`` and ``faithfulness`` (score each answer) -> ``results`` (results.jsonl, summary.json),
``summary`` (the figures and the console table), ``html_report`` (report.html) and ``compare``
(two runs side by side); ``report`` keeps their names importable from one place. ``judge_check``
measures how well the offline faithfulness judge separates supported from unsupported sentences.
"""
