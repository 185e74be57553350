"""Benchmarks: scripts that print JSON figures measured in one run (DESIGN §7)."""
