"""One module per vendor: its Dagster resource and the typed records it returns. Imports no domain."""
