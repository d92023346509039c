"""`bqemulator`, with its single DuckDB connection used by one thread at a time.

bqemulator 1.4.0 shares one DuckDB connection between its REST handlers (the event-loop thread) and its
Storage Write handlers (gRPC worker threads). Under load a query and an AppendRows deadlock inside
DuckDB and the emulator stops answering for good (seen here: the main thread in `execute`, a gRPC thread
in `unregister`, both waiting). This launcher serializes the two sides with one re-entrant lock and
otherwise runs the emulator unchanged: `python -m devtools.bqemulator_serialized start ...`.

It also prints one `append_rows_connection_opened` line per AppendRows connection a client opens, so
tests can count connections on the server's side.

bqemulator leaves BigQuery's HyperLogLog++ sketch functions out of scope (only `HLL_COUNT.EXTRACT(
HLL_COUNT.INIT(x))` works, as COUNT(DISTINCT x)). The aggregates keep sketches in BYTES columns, so this
launcher adds `HLL_COUNT.INIT`, `MERGE`, `MERGE_PARTIAL` and `EXTRACT` as DuckDB macros with the same
merge semantics: here a "sketch" is the exact sorted set of distinct values (JSON text in a BLOB), so
numbers are exact locally where BigQuery's are estimates (about 0.5% error at the default precision).

DuckDB takes one ALTER command per statement ("Only one ALTER command per statement is supported") where
BigQuery takes several (the warehouse adds every missing column in one statement: one table metadata
update). This launcher runs such a statement as a script of one-clause statements.

bqemulator serves AppendRows with a synchronous handler, which holds a thread of grpc.aio's pool for as long as
its connection is open, and the pool is asyncio's default: min(32, cores + 4) threads, 6 on 2 cores. A client
keeps one connection per table open (BigQuery's documented use of the default stream), so the seventh
connection waited, unanswered, until another closed: a sink writing three tables and a second sink in a test
were enough. BigQuery has no such limit (its quotas allow far more concurrent connections per project);
this launcher gives the server a pool of APPEND_STREAM_THREADS threads.

bqemulator records a `CREATE TABLE`'s partitioning from its DDL but not its `CLUSTER BY`, and reads the
columns' types back from DuckDB, where a JSON column is text (a table made through tables.insert keeps
both); this launcher records the DDL's clustering and JSON columns too, as BigQuery does.

bqemulator keeps time travel by copying the whole table (`CREATE TABLE ... AS SELECT *`) after every write,
AppendRows included, for 7 days: each write costs time and memory in proportion to the table, so a table
that grows by appends costs quadratically (seen here: 60 appends of 500 rows took the emulator from 230 MB
to 1.35 GB, and rows/s fell as the table grew). BigQuery's time travel costs a write nothing of the kind, and
nothing here reads `FOR SYSTEM_TIME AS OF`, so this launcher takes no automatic snapshot (the change is still
announced, so cached results and dependent views are refreshed); `CREATE SNAPSHOT TABLE` works as before.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from bqemulator import server
from bqemulator.api import app as api_app
from bqemulator.api.routes import jobs as job_routes
from bqemulator.catalog import ddl_sync
from bqemulator.catalog.models import Clustering
from bqemulator.cli import main
from bqemulator.grpc_api.write_servicer import BigQueryWriteHandler
from bqemulator.jobs import executor
from bqemulator.scripting import interpreter
from bqemulator.storage.engine import DuckDBEngine
from bqemulator.versioning.snapshots import SnapshotManager

DUCKDB = threading.RLock()
APPEND_STREAM_THREADS = 256  # open AppendRows connections (and other sync RPCs) served at once
GRPC_HANDLERS = ("_perform_append", "_handle_create_write_stream", "_handle_get_write_stream",
                 "_handle_finalize_write_stream", "_handle_batch_commit_write_streams", "_handle_flush_rows")


def serialized(fn: Callable) -> Callable:
    """fn, run while holding the DuckDB lock."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        with DUCKDB:
            return fn(*args, **kwargs)

    return wrapper


def create_app(context: object) -> object:
    """The emulator's REST app, each request handled while holding the DuckDB lock."""
    app = api_app.create_app(context)

    @app.middleware("http")
    async def one_at_a_time(request: object, call_next: Callable) -> object:
        # Requests run on the event-loop thread; the lock is re-entrant for that thread.
        with DUCKDB:
            return await call_next(request)

    return app


def counted(handler: Callable) -> Callable:
    """An AppendRows handler that prints a line for every connection (bidi stream) it serves."""

    @functools.wraps(handler)
    def wrapper(self: object, request_iterator: object, context: object) -> object:
        print(APPEND_CONNECTION_LINE, flush=True)
        yield from handler(self, request_iterator, context)

    return wrapper


_SET = """from_json(decode(s), '["VARCHAR"]')"""
SKETCH_MACROS = {  # HLL_COUNT.<name> -> the DuckDB macro (the emulator calls it {project}__hll_count__{name})
    "init": "(x) AS CAST(to_json(list_sort(list(DISTINCT CAST(x AS VARCHAR)) FILTER (WHERE x IS NOT NULL))) AS BLOB)",
    "merge_partial": f"(s) AS CAST(to_json(list_sort(list_distinct(flatten(list({_SET}))))) AS BLOB)",
    "merge": f"(s) AS coalesce(len(list_distinct(flatten(list({_SET})))), 0)",
    "extract": f"(s) AS coalesce(len({_SET}), 0)",
}


def register_sketches(connection: object, project: str) -> None:
    """The HLL_COUNT macros for one project (the emulator names a routine after the query's project)."""
    prefix = project.replace("-", "_h_")  # the emulator's routine naming
    for name, body in SKETCH_MACROS.items():
        connection.execute(f"CREATE OR REPLACE MACRO {prefix}__hll_count__{name}{body}")


def with_sketches(register: Callable) -> Callable:
    """The engine's built-in UDF registration, plus the HLL_COUNT macros for the emulator's project."""

    @functools.wraps(register)
    def wrapper(self: DuckDBEngine) -> None:
        register(self)
        register_sketches(self._connection, self._settings.default_project_id)
        SKETCH_PROJECTS.add(self._settings.default_project_id)

    return wrapper


SKETCH_PROJECTS: set[str] = set()  # projects whose queries have the macros


_ALTER = re.compile(r"^\s*ALTER\s+TABLE\s+(`[^`]+`|\S+)\s+(.*?)\s*;?\s*$", re.S | re.I)
_CLAUSE = re.compile(r",\s*(?=ADD\s+COLUMN\b)", re.I)


def one_alter_per_statement(sql: str) -> str:
    """`ALTER TABLE t ADD COLUMN a ..., ADD COLUMN b ...` as one statement per clause (else sql unchanged)."""
    match = _ALTER.match(sql)
    if not match or not re.match(r"ADD\s+COLUMN\b", match.group(2), re.I):
        return sql
    clauses = _CLAUSE.split(match.group(2))
    if len(clauses) == 1:
        return sql
    return ";\n".join(f"ALTER TABLE {match.group(1)} {clause.strip()}" for clause in clauses) + ";"


def split_alters(execute: Callable) -> Callable:
    """The query job runner, with multi-clause ALTERs split for DuckDB and the sketch macros for the job's
    project (a project other than the emulator's default, e.g. one per deploy test)."""

    @functools.wraps(execute)
    async def wrapper(project_id: str, job_id: str, bq_sql: str, query_params: object, ctx: object,
                      *args: object, **kwargs: object) -> object:
        if project_id not in SKETCH_PROJECTS:
            with DUCKDB:
                register_sketches(ctx.engine._connection, project_id)
            SKETCH_PROJECTS.add(project_id)
        return await execute(project_id, job_id, one_alter_per_statement(bq_sql), query_params, ctx, *args, **kwargs)

    return wrapper


job_routes.execute_query_job = split_alters(job_routes.execute_query_job)

_CLUSTER_BY = re.compile(r"\bCLUSTER\s+BY\s+((?:`?\w+`?\s*,\s*)*`?\w+`?)", re.I)
_JSON_COLUMN = re.compile(r"^\s*`?(\w+)`?\s+(?:ARRAY<\s*)?JSON\b", re.I | re.M)


def with_clustering(sync: Callable) -> Callable:
    """The catalog sync of a created table, plus the DDL's CLUSTER BY columns."""

    @functools.wraps(sync)
    def wrapper(bq_sql: str, project_id: str, ctx: object) -> None:
        sync(bq_sql, project_id, ctx)
        target = ddl_sync._detect_plain_create_table(bq_sql)
        if target is None:
            return
        code = re.sub(r"'(?:\\.|[^'\\])*'", "''", bq_sql)  # string literals (descriptions) left out
        p_id, d_id, t_id = ddl_sync._split_target(target, project_id)
        meta = ctx.catalog.get_table(p_id, d_id, t_id)
        if meta is None:
            return
        update: dict = {}
        found = _CLUSTER_BY.search(code)
        if found:
            update["clustering"] = Clustering(fields=tuple(f.strip(" `") for f in found.group(1).split(",")))
        json_columns = set(_JSON_COLUMN.findall(code.split("(", 1)[-1]))
        if json_columns:
            fields = tuple(f.model_copy(update={"type": "JSON"}) if f.name in json_columns else f
                           for f in meta.schema_.fields)
            update["schema_"] = meta.schema_.model_copy(update={"fields": fields})
        if update:
            ctx.catalog.update_table(meta.model_copy(update=update))

    return wrapper


def without_automatic_snapshots(capture: Callable) -> Callable:
    """SnapshotManager.capture, skipping the copy of the table it takes after every write (kind AUTO)."""

    @functools.wraps(capture)
    def wrapper(self: SnapshotManager, project_id: str, dataset_id: str, table_id: str, *,
                kind: str = "AUTO") -> object:
        return None if kind == "AUTO" else capture(self, project_id, dataset_id, table_id, kind=kind)

    return wrapper


SnapshotManager.capture = without_automatic_snapshots(SnapshotManager.capture)
executor.sync_created_table = with_clustering(executor.sync_created_table)
interpreter.sync_created_table = with_clustering(interpreter.sync_created_table)
DuckDBEngine._register_builtin_udfs = with_sketches(DuckDBEngine._register_builtin_udfs)
APPEND_CONNECTION_LINE = "append_rows_connection_opened"
BigQueryWriteHandler._handle_append_rows = counted(BigQueryWriteHandler._handle_append_rows)
for _name in GRPC_HANDLERS:
    setattr(BigQueryWriteHandler, _name, serialized(getattr(BigQueryWriteHandler, _name)))
server.create_app = create_app


def with_stream_threads(make_server: Callable) -> Callable:
    """grpc.aio.server with a thread pool of its own for the synchronous handlers (see the module's doc)."""

    @functools.wraps(make_server)
    def wrapper(*args: object, **kwargs: object) -> object:
        kwargs.setdefault("migration_thread_pool", ThreadPoolExecutor(APPEND_STREAM_THREADS, "grpc-sync"))
        return make_server(*args, **kwargs)

    return wrapper


grpc.aio.server = with_stream_threads(grpc.aio.server)

if __name__ == "__main__":
    sys.argv[0] = "bqemulator"
    sys.exit(main())
