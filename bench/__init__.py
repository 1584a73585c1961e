"""Benchmarks that print side-by-side ratios against a baseline measured in the same run."""
