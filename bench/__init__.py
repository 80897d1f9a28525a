"""Benchmarks of the mirror and the pages; see docs/benchmarks.md for the commands and figures."""
