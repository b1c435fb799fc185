"""`just bench`: throughput figures for docs/benchmarks.md. Run as `python -m scripts.bench.run`."""
