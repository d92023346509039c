"""Code only the sink function runs: push messages, rows, Storage Write, table definitions and migrations."""
