"""Command-line tools for instances and operators (client, replay, licenses, tables); never deployed."""
