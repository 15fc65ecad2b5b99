"""Benchmarks of dloader against a floor and published DataLoaders (not shipped in wheels).

Run ``python -m benchmarks --quick`` from the repository root; see benchmarks/README.md.
"""
