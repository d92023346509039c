"""Table and view definitions for deploy.sh: `python -m shared.tools.tables schema|table|migrate|view|list`."""

from __future__ import annotations

import json
import sys

from shared.sink.tables import (
    RETIRED_VIEWS,
    TABLES,
    VIEWS,
    add_column_statements,
    partition_expiration_sql,
    schema_json,
    view_sql,
)


def main(argv: list[str]) -> int:
    """`python -m shared.tools.tables schema|table|migrate TABLE [REF]`, `view NAME DATASET`,
    `list tables|views|retired-views`."""
    by_name = {t.name: t for t in TABLES}
    if argv[:1] == ["schema"] and len(argv) == 2 and argv[1] in by_name:
        print(json.dumps(schema_json(by_name[argv[1]]), indent=2))
    elif argv[:1] == ["table"] and len(argv) == 2 and argv[1] in by_name:
        t = by_name[argv[1]]
        print(f"{t.partition_field} {','.join(t.clustering)} {t.expiration_setting}")
    elif argv[:1] == ["view"] and len(argv) == 3 and argv[1] in VIEWS:
        print(view_sql(argv[1], argv[2]))
    elif argv[:1] == ["migrate"] and len(argv) == 3 and argv[1] in by_name:
        print(";\n".join(add_column_statements(by_name[argv[1]], argv[2])) + ";")  # one script
    elif argv[:1] == ["expire"] and len(argv) == 3 and argv[2].isdigit():
        print(partition_expiration_sql(argv[1], int(argv[2])))
    elif argv == ["list", "tables"]:
        print(" ".join(by_name))
    elif argv == ["list", "views"]:
        print(" ".join(VIEWS))
    elif argv == ["list", "retired-views"]:
        print(" ".join(RETIRED_VIEWS))
    else:
        print(main.__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
