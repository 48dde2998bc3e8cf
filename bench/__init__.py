"""Benchmarks of petra-collector: `python -m bench.run --help`."""
