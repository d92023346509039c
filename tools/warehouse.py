"""What deploy.sh asks of the warehouse definitions (shared/sink/warehouse): names, and the SQL to run.

Settings (partition expirations, EVENT_MAX_AGE_DAYS) come from the environment, checked as the functions
check them. Every command prints SQL or names on stdout; a live object's state comes on stdin as the
BigQuery API resource (`bq show --format=json`, `bq ls --transfer_config --format=json`).

    python -m tools.warehouse tables                      # every table, in creation order
    python -m tools.warehouse create TABLE P.D            # CREATE TABLE IF NOT EXISTS ...
    python -m tools.warehouse migrate TABLE P.D < show    # 0-2 statements: missing columns, expiration
    python -m tools.warehouse views P.D                   # logical views, drops of retired ones
    python -m tools.warehouse mv-name | mv P.D | mv-current P.D < show   # the materialized view
    python -m tools.warehouse refresh-script|refresh-params P.D           # the scheduled query
    python -m tools.warehouse find-config NAME < ls       # the scheduled query's resource name
    python -m tools.warehouse grant ROLE P.D MEMBER       # a dataset-level grant
    python -m tools.warehouse analyst-views P.D P.A       # the analysts' views (in P.A) over P.D's aggregates
    python -m tools.warehouse authorize P.A < show        # P.D's access list authorizing P.A's views, or nothing
    python -m tools.warehouse etag < show                 # the etag of the resource shown (for bq update --etag)
    python -m tools.warehouse analyst-role                # the role analysts get on P.A (never on P.D)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping

from shared.ingest.config import IngestConfig
from shared.sink.config import SinkConfig
from shared.sink.warehouse import TABLES, aggregates, analysts, ddl, refresh, view_statements
from shared.sink.warehouse.migrate import LiveTable, migration
from tools.cli import dispatch

BY_NAME = {t.name: t for t in TABLES}


def _sink() -> SinkConfig:
    return SinkConfig.from_env()


def _expiration(table_name: str) -> int | None:
    table = BY_NAME[table_name]
    return _sink().expiration_days(table.expiration_setting) if table.expiration_setting else None


def _print(statements: list[str]) -> int:
    if statements:
        print(";\n".join(statements) + ";")
    return 0


def _stdin_json(what: str) -> object:
    text = sys.stdin.read().strip()
    try:
        return json.loads(text) if text else None
    except ValueError as e:
        raise SystemExit(f"tools.warehouse: stdin is not {what}: {e}") from None


def refresh_lookback(env: Mapping[str, str] = os.environ) -> int:
    """The refresh's lookback for the deployed EVENT_MAX_AGE_DAYS: the scheduled query's and a manual refresh's."""
    return aggregates.lookback_days(IngestConfig.setting_for("EVENT_MAX_AGE_DAYS")[1].value(env))


def _refresh_script(dataset: str) -> str:
    return refresh.refresh_script(dataset, lookback_days=refresh_lookback())


def find_configs(configs: list[dict], display_name: str) -> list[str]:
    """Resource names of the scheduled queries with this display name (display names are not unique)."""
    return sorted(c["name"] for c in configs if c.get("displayName") == display_name and c.get("name")
                  and c.get("dataSourceId", "scheduled_query") == "scheduled_query")


def _find_config(args: argparse.Namespace) -> int:
    configs = _stdin_json("a bq transfer config list") or []  # bq prints nothing when there is none
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        print("not a bq transfer config list", file=sys.stderr)
        return 1
    found = find_configs(configs, args.display_name)
    if len(found) > 1:  # stdout is the answer deploy.sh reads; warnings go to stderr
        print(f"warning: {len(found)} scheduled queries named {args.display_name}: {found}; updating the "
              "first, delete the others", file=sys.stderr)
    print(found[0] if found else "")
    return 0


def _mv_current(args: argparse.Namespace) -> int:
    shown = _stdin_json("a bq show answer")
    live = shown.get("labels", {}).get("definition") if isinstance(shown, dict) else None
    return 0 if live == aggregates.definition_label(args.dataset) else 1


def _migrate(args: argparse.Namespace) -> int:
    shown = _stdin_json("a bq show answer")
    if not isinstance(shown, dict):
        raise SystemExit("tools.warehouse: migrate needs the table's bq show --format=json on stdin")
    ref = f"{args.dataset}.{args.table}"
    return _print(migration(BY_NAME[args.table], ref, LiveTable.from_resource(shown), _expiration(args.table)))


def _authorize(args: argparse.Namespace) -> int:
    """The `bq update --source` file: the source dataset's whole access list plus the analysts' dataset
    (views); nothing when it is already authorized (a redeploy updates nothing)."""
    shown = _stdin_json("a bq show answer")
    if not isinstance(shown, dict):
        raise SystemExit("tools.warehouse: authorize needs the source dataset's bq show --format=json on stdin")
    access = analysts.authorized_access(shown, args.analysts)
    if access is not None:
        print(json.dumps({"access": access}, indent=1))
    return 0


def _etag(args: argparse.Namespace) -> int:
    """The shown resource's etag: `bq update --etag` refuses the update if the resource changed since."""
    shown = _stdin_json("a bq show answer")
    if not isinstance(shown, dict) or not shown.get("etag"):
        raise SystemExit("tools.warehouse: etag needs a bq show --format=json answer with an etag on stdin")
    print(shown["etag"])
    return 0


COMMANDS = {
    "tables": (lambda a: print("\n".join(BY_NAME)) or 0, ()),
    "create": (lambda a: _print([ddl.create_table_sql(BY_NAME[a.table], f"{a.dataset}.{a.table}",
                                                      _expiration(a.table))]), ("table", "dataset")),
    "migrate": (_migrate, ("table", "dataset")),
    "views": (lambda a: _print(view_statements(a.dataset)), ("dataset",)),
    "mv-name": (lambda a: print(aggregates.MATERIALIZED_VIEW) or 0, ()),
    "mv": (lambda a: _print([aggregates.materialized_view_ddl(a.dataset)]), ("dataset",)),
    "mv-current": (_mv_current, ("dataset",)),
    "refresh-script": (lambda a: print(_refresh_script(a.dataset), end="") or 0, ("dataset",)),
    "refresh-params": (lambda a: print(json.dumps({"query": _refresh_script(a.dataset)})) or 0, ("dataset",)),
    "find-config": (_find_config, ("display_name",)),
    "grant": (lambda a: print(ddl.grant_sql(a.role, a.dataset, a.member)) or 0, ("role", "dataset", "member")),
    "analyst-views": (lambda a: _print(analysts.view_statements(a.dataset, a.analysts)), ("dataset", "analysts")),
    "authorize": (_authorize, ("analysts",)),
    "etag": (_etag, ()),
    "analyst-role": (lambda a: print(analysts.READER_ROLE) or 0, ()),
}
HELP = {"table": "a table name (see `tables`)", "dataset": "PROJECT.DATASET", "display_name": "display name",
        "role": "e.g. roles/bigquery.dataEditor", "member": "e.g. serviceAccount:EMAIL",
        "analysts": "PROJECT.DATASET of the analysts' views"}


def parser() -> argparse.ArgumentParser:
    """One sub-command per question deploy.sh asks."""
    p = argparse.ArgumentParser(prog="python -m tools.warehouse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    for name, (run, positionals) in COMMANDS.items():
        cmd = sub.add_parser(name)
        for arg in positionals:
            cmd.add_argument(arg, help=HELP[arg], **({"choices": list(BY_NAME)} if arg == "table" else {}))
        cmd.set_defaults(run=run)
    return p


if __name__ == "__main__":
    sys.exit(dispatch(parser()))
