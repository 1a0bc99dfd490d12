"""Benchmarks: throughput and latency figures for the pipeline (see bench/README.md)."""
