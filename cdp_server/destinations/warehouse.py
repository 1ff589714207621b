"""The `warehouse` destination kind: events into PostgreSQL tables in Segment's warehouse schema.

What lands where (tables, columns, names, types, odd values) is the engine's (rust_core/engine/src/warehouse, whose
module docs state the rules): `plan_warehouse_batch` reads the batch's JSON into rows per table, and the plan encodes
each table's rows as a COPY payload, both without the GIL and without a Python object per event or row. This module
connects, makes the tables and columns, and loads; its settings, and the addresses they let it reach, are
warehouse_settings.py's.

A batch is one transaction. Each table's payload is COPYed (binary) straight into the table under a savepoint; when
that hits an id already there (a redelivered batch), the savepoint undoes it and the rows go into a temporary
staging table instead, then `INSERT … SELECT … ON CONFLICT (id) DO NOTHING` (`users`, always this way: `DO UPDATE`,
the newest traits win). A redelivered batch therefore adds no row twice, and a batch that fails anywhere (the server
stops mid-COPY) leaves nothing behind: the worker redelivers it whole. Tables and columns are made beforehand in a
short transaction of their own (`CREATE TABLE IF NOT EXISTS`, `ALTER TABLE … ADD COLUMN IF NOT EXISTS`, under an
advisory lock so that two loaders do not race on the catalog), so the load never holds an `ACCESS EXCLUSIVE` lock
that readers wait on. The columns known per table are cached: read from information_schema at connection, and again
after any error (which drops the connection: an undefined column, someone's `DROP`, is then seen at the next
delivery).

A deletion notice (deletion.py) is one transaction too: every row of the person, in every table of the schema that
has a `user_id` or `anonymous_id` column (read from the catalog then: tables made by another loader or by hand hold
rows as well), and their `users` rows (keyed by user id, the table having no `anonymous_id`). Nothing is inserted:
the notice's events are for destinations that forward events.

Errors: the connection refused, reset or lost, the server shutting down or starting, serialization failures,
deadlocks, lock timeouts, a full disk, too many clients → `RetryableError`; authentication failures, permission
denied, a schema that cannot be created, a table without a key on `id`, too many columns → `PermanentError`. The
reason names the step and table and carries the server's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from cdp_server import _core
from cdp_server.destinations.base import Batch, DeliveryError, JsonObject, PermanentError, RetryableError
from cdp_server.destinations.deletion import ANONYMOUS_ID, USER_ID, DeletionNotice
from cdp_server.destinations.warehouse_settings import WarehouseSettings, check_hosts, pinned_connection_params

log = logging.getLogger(__name__)

# The load time: every table has it, no event sets it, and each payload's rows end with it.
LOAD_TIME_COLUMN = "uuid_ts"
# One row per user, keyed (`id`) by user id; an event named "Users" gets the table `_users`.
USERS_TABLE = "users"

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
        # table → rows removed by the last deletion notice that completed (for tests and the receipt's detail).
        self.last_deletion: dict[str, int] = {}
        # Deliveries and deletions share the one connection, so its transaction: one at a time, or a deletion's
        # commit would commit half a batch, and one's failure would drop the other's connection.
        self._transaction = asyncio.Lock()

    def __repr__(self) -> str:  # never the DSN: it may hold a password
        return f"WarehouseDestination({self.name!r}, schema={self.settings.schema!r})"

    async def deliver(self, batch: Batch) -> None:
        """Loads the batch in one transaction, or raises Retryable/PermanentError (the connection then dropped).

        The CPU work (decoding, the schema's rows, the COPY payloads) is the engine's, on the event loop's thread
        but without the GIL: measured on the load benchmark's track events, about 4 µs an event for both tables,
        against 12 µs when it was Python's."""
        try:
            plan = _core.plan_warehouse_batch(batch.raw, batch.message_ids)
        except _core.InvalidRequest as error:  # not a JSON array of events: no retry can help
            raise PermanentError(f"warehouse reading the batch: {error}") from error
        self.stats.properties_discarded += plan.discarded
        self.stats.events_skipped += plan.skipped_events
        tables = plan.tables
        nulled: Counter[str] = Counter()
        step = "connecting"
        async with self._transaction:
            try:
                connection = await self._connect()
                step = "creating tables and columns"
                await self._ensure_columns(connection, tables)
                # uuid_ts: one load time for the batch, as Segment's loader stamps a load.
                load_time_us = time.time_ns() // 1000
                async with connection.cursor() as cursor:
                    for table in tables:
                        step = f"loading {self.settings.schema}.{table.name}"
                        await self._load_table(cursor, plan, table, load_time_us, nulled)
                step = "committing"
                await connection.commit()
            except psycopg.Error as error:
                await self._drop_connection()
                raise classify(error, step) from error
            except BaseException:
                # DeliveryError from _connect, cancellation, a bug: the connection's state is unknown either way.
                await self._drop_connection()
                raise
        if nulled:
            self.stats.values_nulled.update(nulled)
            log.warning(
                "warehouse %s: values that did not fit their column's type were loaded as NULL: %s",
                self.name,
                dict(nulled),
            )

    async def delete(self, notice: DeletionNotice) -> None:
        """Deletes the person's rows from every table of the schema in one transaction, and records how many per
        table in `last_deletion`; raises Retryable/PermanentError as `deliver` does (the connection then dropped).
        Idempotent: a notice sent again deletes nothing more."""
        self.last_deletion = {}
        ids = {USER_ID: list(notice.user_ids), ANONYMOUS_ID: list(notice.anonymous_ids)}
        deleted: dict[str, int] = {}
        step = "connecting"
        async with self._transaction:
            try:
                connection = await self._connect()
                step = "reading the schema's tables"
                person_columns = await self._person_columns(connection)
                async with connection.cursor() as cursor:
                    for table, columns in person_columns.items():
                        matches = [(column, ids[kind]) for column, kind in columns if ids[kind]]
                        if matches:
                            step = f"deleting from {self.settings.schema}.{table}"
                            deleted[table] = await self._delete_matching(cursor, table, matches)
                step = "committing"
                await connection.commit()
            except psycopg.Error as error:
                await self._drop_connection()
                raise classify(error, step) from error
            except BaseException:
                await self._drop_connection()
                raise
        self.last_deletion = deleted
        # Counts per table only, never an identifier.
        log.debug("warehouse %s: regulation %s deleted rows %s", self.name, notice.regulation_id, deleted)

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

    async def _person_columns(
        self, connection: psycopg.AsyncConnection[tuple[Any, ...]]
    ) -> dict[str, list[tuple[str, str]]]:
        """Table → (column, the identifier type its values are) for every table of the schema with a `user_id` or
        `anonymous_id` column, and `users` by its `id` (a user id). Base tables only: a view's rows are its tables'."""
        cursor = await connection.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name)"
            " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'"
            " AND (c.column_name = ANY(%s) OR (c.table_name = %s AND c.column_name = 'id'))"
            " ORDER BY 1, 2",
            (self.settings.schema, [USER_ID, ANONYMOUS_ID], USERS_TABLE),
        )
        columns: dict[str, list[tuple[str, str]]] = {}
        for table, column in await cursor.fetchall():
            columns.setdefault(table, []).append((column, USER_ID if column == "id" else column))
        return columns

    async def _delete_matching(
        self, cursor: psycopg.AsyncCursor[tuple[Any, ...]], table: str, matches: Sequence[tuple[str, list[str]]]
    ) -> int:
        """Deletes the table's rows in which any of the columns holds one of its values; how many."""
        where = sql.SQL(" OR ").join(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)) for column, _ in matches)
        target = sql.Identifier(self.settings.schema, table)
        await cursor.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(target, where), [values for _, values in matches]
        )
        return cursor.rowcount

    async def _ensure_columns(
        self, connection: psycopg.AsyncConnection[tuple[Any, ...]], tables: Iterable[_core.WarehouseTable]
    ) -> None:
        """Creates the tables and columns the batch needs and the cache lacks, in a transaction of its own."""
        statements: list[sql.Composed] = []
        touched: list[str] = []
        for table in tables:
            known = self._columns.get(table.name)
            target = sql.Identifier(self.settings.schema, table.name)
            if known is None:
                definitions = [
                    sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(column_type))
                    for column, column_type in table.fixed_columns
                ]
                statements.append(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (id))").format(
                        target, sql.SQL(", ").join(definitions)
                    )
                )
                known = dict(table.fixed_columns)
                touched.append(table.name)
            # A new column's type: the table's fixed one, else its first value's (the engine's rules).
            additions = [
                sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(column), sql.SQL(column_type))
                for column, column_type in zip(table.columns, table.column_types, strict=True)
                if column not in known
            ]
            if additions:
                statements.append(sql.SQL("ALTER TABLE {} {}").format(target, sql.SQL(", ").join(additions)))
                touched.append(table.name)
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
        plan: _core.WarehousePlan,
        table: _core.WarehouseTable,
        load_time_us: int,
        nulled: Counter[str],
    ) -> None:
        """Loads one table's rows in the batch's transaction; rows whose id is already there are left out (users:
        merged, newest traits winning). Adds the values that did not cast to `nulled`.

        The common case, no id loaded before, COPYs straight into the table, under a savepoint: measured, a staging
        table and INSERT … SELECT cost as much server time again as the COPY itself. A redelivered batch (or a
        messageId twice in one) fails that COPY on the primary key; the savepoint undoes it, and the same rows go
        the way that skips duplicates: into a temporary staging table, then INSERT … SELECT … ON CONFLICT. Either
        way the rows are in or out together with the rest of the batch."""
        data_types = self._columns[table.name]
        copy = plan.encode(table.index, [data_types[column] for column in table.columns], load_time_us)
        label = f"{self.settings.schema}.{table.name}"
        for column, count in copy.nulled:
            nulled[f"{label}.{column}"] += count
        target = sql.Identifier(self.settings.schema, table.name)
        column_list = sql.SQL(", ").join(map(sql.Identifier, [*table.columns, LOAD_TIME_COLUMN]))
        if table.name != "users" and copy.binary:
            await cursor.execute("SAVEPOINT tributary_direct_copy")
            try:
                await self._copy(cursor, target, column_list, copy)
                await cursor.execute("RELEASE SAVEPOINT tributary_direct_copy")
                return
            except psycopg.errors.UniqueViolation:
                await cursor.execute("ROLLBACK TO SAVEPOINT tributary_direct_copy")
        stage = sql.Identifier(f"_tributary_stage_{table.name}"[:63])
        await cursor.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, target))
        # A column of a type made by hand: the payload is COPY text, and the server casts each value to its type.
        await self._copy(cursor, stage, column_list, copy)
        insert = sql.SQL("INSERT INTO {} AS existing ({}) SELECT {} FROM {} ").format(
            target, column_list, column_list, stage
        )
        if table.name == "users":
            insert += self._newest_wins(table.columns)
        else:
            insert += sql.SQL("ON CONFLICT (id) DO NOTHING")
        await cursor.execute(insert)

    @staticmethod
    async def _copy(
        cursor: psycopg.AsyncCursor[tuple[Any, ...]],
        table: sql.Identifier,
        column_list: sql.Composable,
        copy: _core.WarehouseCopy,
    ) -> None:
        """COPY the engine's payload into `table`, in the format it was encoded in."""
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, column_list)
        if copy.binary:
            statement += sql.SQL(" (FORMAT BINARY)")
        async with cursor.copy(statement) as pgcopy:
            # A view: psycopg sends large buffers in slices, which would otherwise each be a copy.
            await pgcopy.write(memoryview(copy.payload))

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
