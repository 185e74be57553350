"""Benchmarks: scripts that print JSON figures measured in one run (`equity bench ...`)."""
