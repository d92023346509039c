"""Telemetry Gateway: code shared by the ingest and sink functions."""
