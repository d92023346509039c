"""Code only the ingest function runs: HTTP surface, RecordEvents, body reading, validation, quota, publishing."""
