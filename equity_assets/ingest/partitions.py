"""Partitions of the ingest domain, defined once."""

import dagster as dg

# One partition per upload (the upload id): fine for thousands of uploads, unlike one per lead.
uploads_partitions = dg.DynamicPartitionsDefinition(name="uploads")
