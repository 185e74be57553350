"""One home per external vendor: its Dagster resource and its wire models, on a shared HTTP base.

Domains import vendors; vendors import no domain.
"""
