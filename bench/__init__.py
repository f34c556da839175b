"""Benchmarks against named anchors; each writes bench/results/<name>.json and <name>.md. Not tests."""
