"""Benchmarks: commands that print figures anyone can rerun."""
