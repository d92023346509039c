"""A local REST stand-in for the Google APIs deploy.sh reaches that have no emulator (see SOURCES.md)."""
