"""Round trips made by DataLoader implementations in real GraphQL queries.

Run ``python -m benchmarks.roundtrips [--quick]`` from the repository root; see README.md here.
"""
