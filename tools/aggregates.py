"""Run the analysts' aggregates now (settings as for the sink; definitions in shared/sink/warehouse).

    python -m tools.aggregates refresh                        # what the scheduled query runs, now
    python -m tools.aggregates rebuild --from DAY [--to DAY]  # rebuild those days (repairs, erasures)
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta

from shared.sink.clients import bigquery_client
from shared.sink.config import SinkConfig
from shared.sink.warehouse import refresh
from tools.warehouse import refresh_lookback


def day_range(first: str, last: str | None) -> list[date]:
    """Every day from first to last (inclusive), at most 10 years."""
    start, end = date.fromisoformat(first), date.fromisoformat(last or first)
    if end < start or (end - start).days > 3660:
        raise ValueError("--to must be on or after --from, at most 10 years later")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _report(verb: str, days: list[date]) -> int:
    print(f"{verb}: {len(days)} days rebuilt" + (f" ({days[0]} .. {days[-1]})" if days else ""))
    return 0


def _refresh(_args: argparse.Namespace) -> int:
    config = SinkConfig.from_env()
    return _report("refresh", refresh.refresh(bigquery_client(config), config.dataset_ref,
                                              lookback_days=refresh_lookback()))


def _rebuild(args: argparse.Namespace) -> int:
    config = SinkConfig.from_env()
    return _report("rebuild", refresh.rebuild(bigquery_client(config), config.dataset_ref, args.days))


def parser() -> argparse.ArgumentParser:
    """The CLI's arguments."""
    p = argparse.ArgumentParser(prog="python -m tools.aggregates", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    sub.add_parser("refresh", help="run the refresh script now").set_defaults(run=_refresh)
    rb = sub.add_parser("rebuild", help="rebuild named days")
    rb.add_argument("--from", dest="first", required=True, help="first day, YYYY-MM-DD")
    rb.add_argument("--to", dest="last", help="last day (default: the first)")
    rb.set_defaults(run=_rebuild)
    return p


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = parser()
    args = p.parse_args(argv)
    if args.run is _rebuild:
        try:
            args.days = day_range(args.first, args.last)
        except ValueError as e:
            p.error(str(e))
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
