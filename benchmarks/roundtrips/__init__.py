"""Round trips made by DataLoader implementations in real GraphQL queries.

Run ``python -m benchmarks.roundtrips [--quick] [--check]`` from the repository root; see benchmarks/README.md.
"""
