"""Benchmarks: `./dev bench` runs them and writes BENCHMARKS.md. Not part of the test suite."""
