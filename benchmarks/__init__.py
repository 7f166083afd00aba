"""Benchmarks of secton-harness: ``python -m benchmarks [--quick]`` runs them all and
rewrites benchmarks/RESULTS.md (summary table first, then one section per script)."""
