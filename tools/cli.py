"""Running the project's sub-command CLIs (licenses, client)."""

from __future__ import annotations

import argparse


def dispatch(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse argv and run the chosen verb's `run` function; its return value is the exit code."""
    args = parser.parse_args(argv)
    return args.run(args)
