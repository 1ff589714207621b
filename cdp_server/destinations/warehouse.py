"""The `warehouse` destination kind: events into PostgreSQL tables in Segment's warehouse schema.

What lands where (tables, columns, names, types, odd values) is warehouse_schema.py's; this module connects, makes
the tables and columns, and loads; its settings, and the addresses they let it reach, are warehouse_settings.py's.

A batch is one transaction. Each table's rows are COPYed (binary, warehouse_copy.py) straight into the table
under a savepoint; when that hits an id already there (a redelivered batch), the savepoint undoes it and the rows go
into a temporary staging table instead, then `INSERT … SELECT … ON CONFLICT (id) DO NOTHING` (`users`, always this
way: `DO UPDATE`, the newest traits win). A redelivered batch therefore adds no row twice, and a batch that fails
anywhere (the server stops mid-COPY) leaves nothing behind: the worker redelivers it whole. Tables and columns are
made beforehand in a short transaction of their own (`CREATE TABLE IF NOT EXISTS`, `ALTER TABLE … ADD COLUMN IF
NOT EXISTS`, under an advisory lock so that two loaders do not race on the catalog), so the load never holds an
`ACCESS EXCLUSIVE` lock that readers wait on. The columns known per table are cached: read from information_schema
at connection, and again after any error (which drops the connection: an undefined column, someone's `DROP`, is
then seen at the next delivery).

Errors: the connection refused, reset or lost, the server shutting down or starting, serialization failures,
deadlocks, lock timeouts, a full disk, too many clients → `RetryableError`; authentication failures, permission
denied, a schema that cannot be created, a table without a key on `id`, too many columns → `PermanentError`. The
reason names the step and table and carries the server's message.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cdp_server.destinations.base import Batch, DeliveryError, JsonObject, PermanentError, RetryableError
from cdp_server.destinations.warehouse_copy import COPY_TYPES, CopyColumns, CopyRowBuilder
from cdp_server.destinations.warehouse_schema import LOAD_TIME_COLUMN, ColumnType, TableRows, infer_type, plan_batch
from cdp_server.destinations.warehouse_settings import WarehouseSettings, check_hosts, pinned_connection_params

log = logging.getLogger(__name__)

# -- errors -------------------------------------------------------------------------------------------------------

# SQLSTATE classes and codes after which the same batch may well load later.
_RETRYABLE_CLASSES = ("08", "40", "53", "58")  # connection, rollback (serialization, deadlock), resources, I/O
_RETRYABLE_CODES = frozenset(
    {
        "57014",  # query_canceled (statement timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
        "55P03",  # lock_not_available
        "55006",  # object_in_use
        "25006",  # read_only_sql_transaction: a standby, until failover completes
        "42703",  # undefined_column: dropped behind our back; the cache is reread on reconnection
        "42P01",  # undefined_table: likewise
    }
)
# libpq's own messages when a connection attempt is refused for good (no SQLSTATE reaches the client then).
_PERMANENT_CONNECT = re.compile(
    r"authentication failed|no pg_hba\.conf entry|role .* does not exist|database .* does not exist"
    r"|not permitted to log in|no password supplied|permission denied|SSL|certificate|invalid .* value",
    re.IGNORECASE,
)


def _server_message(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    sqlstate = getattr(error, "sqlstate", None)
    return f"{text} (SQLSTATE {sqlstate})" if sqlstate else text


def classify(error: psycopg.Error, step: str) -> DeliveryError:
    """A psycopg error, raised during `step`, as the worker's Retryable or PermanentError."""
    reason = f"warehouse {step}: {_server_message(error)}"
    sqlstate = error.sqlstate
    if sqlstate:
        if sqlstate.startswith(_RETRYABLE_CLASSES) or sqlstate in _RETRYABLE_CODES:
            return RetryableError(reason)
        return PermanentError(reason)
    if isinstance(error, psycopg.OperationalError) and _PERMANENT_CONNECT.search(str(error)):
        return PermanentError(reason)
    # No SQLSTATE: the connection failed or was lost (refused, reset, closed, timed out).
    return RetryableError(reason)


# -- the destination ----------------------------------------------------------------------------------------------


@dataclass
class WarehouseStats:
    """What the loads dropped on the way, for the operator: values that did not cast to their column's type
    (loaded as NULL), per `schema.table.column`; properties/traits discarded for a reserved column name; events of
    no known type."""

    values_nulled: Counter[str] = field(default_factory=Counter)
    properties_discarded: int = 0
    events_skipped: int = 0


def _advisory_lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"tributary.warehouse.ddl.{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class WarehouseDestination:
    """One PostgreSQL warehouse. One connection, made on the first delivery and after any error."""

    def __init__(self, name: str, settings: WarehouseSettings) -> None:
        self.name = name
        self.settings = settings
        self.stats = WarehouseStats()
        self._connection: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        # table → column → information_schema data_type, as of the last read or our own DDL.
        self._columns: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:  # never the DSN: it may hold a password
        return f"WarehouseDestination({self.name!r}, schema={self.settings.schema!r})"

    async def deliver(self, batch: Batch) -> None:
        """Loads the batch in one transaction, or raises Retryable/PermanentError (the connection then dropped).

        The CPU work (decoding, the schema's rows, the COPY tuples: about 5 ms a table of 1,000 rows) runs on the
        event loop: measured, handing it to a thread (asyncio.to_thread) cost 15% of the throughput in GIL
        hand-overs, and would not spare ingest the GIL anyway."""
        plan = plan_batch(batch.events, batch.message_ids)
        self.stats.properties_discarded += plan.discarded
        self.stats.events_skipped += plan.skipped_events
        # JSON writes NUL as \u0000: none in the batch, no string to clean.
        builder = CopyRowBuilder(strings_may_hold_nul=b"\\u0000" in batch.raw)
        step = "connecting"
        try:
            connection = await self._connect()
            step = "creating tables and columns"
            await self._ensure_columns(connection, plan.tables.values())
            # uuid_ts: one load time for the batch, as Segment's loader stamps a load.
            load_time = datetime.now(UTC)
            async with connection.cursor() as cursor:
                for rows in plan.tables.values():
                    step = f"loading {self.settings.schema}.{rows.table}"
                    await self._load_table(cursor, rows, builder, load_time)
            step = "committing"
            await connection.commit()
        except psycopg.Error as error:
            await self._drop_connection()
            raise classify(error, step) from error
        except BaseException:
            # DeliveryError from _connect, cancellation, a bug: the connection's state is unknown either way.
            await self._drop_connection()
            raise
        if builder.nulled:
            self.stats.values_nulled.update(builder.nulled)
            log.warning(
                "warehouse %s: values that did not fit their column's type were loaded as NULL: %s",
                self.name,
                dict(builder.nulled),
            )

    async def close(self) -> None:
        await self._drop_connection()

    # -- connection and schema --------------------------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        params = await pinned_connection_params(self.settings)
        params.setdefault("application_name", f"tributary:{self.name}"[:63])
        connection = await psycopg.AsyncConnection.connect(make_conninfo("", **params), autocommit=False)
        self._connection = connection
        schema = self.settings.schema
        # Look before creating: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
        # exists, and a role that may only write into its schema is a fine warehouse role.
        exists = await connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await exists.fetchone() is None:
            try:
                await connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            except psycopg.Error as error:
                raise classify(error, f"creating schema {schema}") from error
        self._columns = await self._read_columns(connection, tables=None)
        await connection.commit()
        return connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._columns = {}
        if connection is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: nothing more to release
                await connection.close()

    async def _read_columns(
        self, connection: psycopg.AsyncConnection[tuple[Any, ...]], tables: Sequence[str] | None
    ) -> dict[str, dict[str, str]]:
        query = "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s"
        params: tuple[Any, ...] = (self.settings.schema,)
        if tables is not None:
            query += " AND table_name = ANY(%s)"
            params += (list(tables),)
        cursor = await connection.execute(query, params)
        columns: dict[str, dict[str, str]] = {}
        for table, column, data_type in await cursor.fetchall():
            columns.setdefault(table, {})[column] = data_type
        return columns

    async def _ensure_columns(
        self, connection: psycopg.AsyncConnection[tuple[Any, ...]], tables: Iterable[TableRows]
    ) -> None:
        """Creates the tables and columns the batch needs and the cache lacks, in a transaction of its own."""
        statements: list[sql.Composed] = []
        touched: list[str] = []
        for rows in tables:
            known = self._columns.get(rows.table)
            target = sql.Identifier(self.settings.schema, rows.table)
            if known is None:
                definitions = [
                    sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(column_type))
                    for column, column_type in rows.fixed.items()
                ]
                statements.append(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (id))").format(
                        target, sql.SQL(", ").join(definitions)
                    )
                )
                known = dict(rows.fixed)
                touched.append(rows.table)
            new_columns = sorted(column for column in rows.columns if column not in known)
            if new_columns:
                first_values = rows.first_values(new_columns)
                additions = [
                    sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(
                        sql.Identifier(column),
                        sql.SQL(rows.fixed.get(column) or infer_type(first_values[column])),
                    )
                    for column in new_columns
                ]
                statements.append(sql.SQL("ALTER TABLE {} {}").format(target, sql.SQL(", ").join(additions)))
                touched.append(rows.table)
        if not statements:
            return
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_advisory_lock_key(self.settings.schema),))
        for statement in statements:
            await connection.execute(statement)
        # Read back what is there: another loader may have made a column first, with another type.
        self._columns.update(await self._read_columns(connection, touched))
        await connection.commit()

    # -- loading ----------------------------------------------------------------------------------------------------

    async def _load_table(
        self,
        cursor: psycopg.AsyncCursor[tuple[Any, ...]],
        rows: TableRows,
        builder: CopyRowBuilder,
        load_time: datetime,
    ) -> None:
        """Loads one table's rows in the batch's transaction; rows whose id is already there are left out (users:
        merged, newest traits winning).

        The common case, no id loaded before, COPYs straight into the table, under a savepoint: measured, a staging
        table and INSERT … SELECT cost as much server time again as the COPY itself. A redelivered batch (or a
        messageId twice in one) fails that COPY on the primary key; the savepoint undoes it, and the same rows go
        the way that skips duplicates: into a temporary staging table, then INSERT … SELECT … ON CONFLICT. Either
        way the rows are in or out together with the rest of the batch."""
        names = sorted(column for column in rows.columns if column != LOAD_TIME_COLUMN)
        data_types = self._columns[rows.table]
        columns = CopyColumns.of([(name, data_types[name]) for name in names])
        label = f"{self.settings.schema}.{rows.table}"
        values = list(builder.rows(label, rows, columns, tail=load_time))
        copy_types = [*columns.copy_types, COPY_TYPES[ColumnType.TIMESTAMP]]
        target = sql.Identifier(self.settings.schema, rows.table)
        column_list = sql.SQL(", ").join(map(sql.Identifier, [*names, LOAD_TIME_COLUMN]))
        if rows.table != "users" and not columns.needs_cast:
            await cursor.execute("SAVEPOINT tributary_direct_copy")
            try:
                await self._copy(cursor, target, column_list, values, copy_types)
                await cursor.execute("RELEASE SAVEPOINT tributary_direct_copy")
                return
            except psycopg.errors.UniqueViolation:
                await cursor.execute("ROLLBACK TO SAVEPOINT tributary_direct_copy")
        stage = sql.Identifier(f"_tributary_stage_{rows.table}"[:63])
        await cursor.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, target))
        # A column of a type made by hand: text COPY, so that the server casts each value to the column's type.
        await self._copy(cursor, stage, column_list, values, None if columns.needs_cast else copy_types)
        insert = sql.SQL("INSERT INTO {} AS existing ({}) SELECT {} FROM {} ").format(
            target, column_list, column_list, stage
        )
        if rows.table == "users":
            insert += self._newest_wins(names)
        else:
            insert += sql.SQL("ON CONFLICT (id) DO NOTHING")
        await cursor.execute(insert)

    @staticmethod
    async def _copy(
        cursor: psycopg.AsyncCursor[tuple[Any, ...]],
        table: sql.Identifier,
        column_list: sql.Composable,
        values: Iterable[tuple[Any, ...]],
        binary_types: Sequence[str] | None,
    ) -> None:
        """COPY `values` into `table`: binary, with `binary_types` (psycopg's `set_types`), else text."""
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, column_list)
        if binary_types is not None:
            statement += sql.SQL(" (FORMAT BINARY)")
        async with cursor.copy(statement) as copy:
            if binary_types is not None:
                copy.set_types(binary_types)
            for row in values:
                await copy.write_row(row)

    @staticmethod
    def _newest_wins(columns: Sequence[str]) -> sql.Composable:
        """The users upsert: a newer (or as new) call's non-null values replace; an older call only fills nulls."""
        newer = sql.SQL('(existing."timestamp" IS NULL OR EXCLUDED."timestamp" >= existing."timestamp")')
        newest_wins = sql.SQL(
            "{0} = CASE WHEN {1} THEN COALESCE(EXCLUDED.{0}, existing.{0})"
            " ELSE COALESCE(existing.{0}, EXCLUDED.{0}) END"
        )
        updates = [newest_wins.format(sql.Identifier(column), newer) for column in columns if column != "id"]
        updates.append(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(LOAD_TIME_COLUMN)))
        return sql.SQL("ON CONFLICT (id) DO UPDATE SET ") + sql.SQL(", ").join(updates)


class WarehouseKind:
    """The `warehouse` destination kind (PostgreSQL)."""

    name = "warehouse"

    def validate(self, settings: Mapping[str, Any]) -> JsonObject:
        parsed = WarehouseSettings.parse(settings)
        check_hosts(parsed)
        return parsed.as_json()

    def create(self, name: str, settings: Mapping[str, Any]) -> WarehouseDestination:
        # Addresses are checked at each connection; resolving here would only repeat it.
        return WarehouseDestination(name, WarehouseSettings.parse(settings))


KIND = WarehouseKind()
