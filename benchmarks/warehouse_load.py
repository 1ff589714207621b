"""Load benchmark of the warehouse destination against a bare psycopg COPY of the same rows.

On one private PostgreSQL (tests/postgres.py: 127.0.0.1, fsync off for both sides), N realistic track events
(default 200,000; `--quick` 20,000) go in batches of 1,000:

- ours: each batch as the delivery worker hands it over (`Batch` of the engine's JSON bytes) through
  `WarehouseDestination.deliver`: JSON decoding, Segment's schema (flattening, names, types), the casting rules,
  the duplicate check, one transaction a batch. Segment's schema puts each track event in two tables, `tracks`
  and its event's table (`order_completed`): two rows an event.
- bare COPY, the same rows: those two rows an event, already built as tuples of typed values before the clock (ours'
  payloads for the batch, read back into Python values), through psycopg's binary COPY (`write_row` with
  `set_types`: its fastest path, measured), one COPY per table and one transaction a batch, into tables made `LIKE`
  ours (same columns, types and primary key).
- bare COPY, one table: only the event table's rows (one COPY a batch): what one row an event costs.

Every event is an `Order Completed` (varied properties and context), so that the bare COPY needs one table a
batch; other event names change nothing but the table a row goes to. Each round runs ours and the baselines on a
fresh database, each from a checkpoint, in alternating order; the best round of each is reported (the machine may
be shared: the best is the least disturbed). Prints rows/s for each and the ratios; `--json PATH` writes them.

    python -m benchmarks.warehouse_load [--quick] [--events N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from cdp_server import _core
from cdp_server.destinations.base import Batch
from cdp_server.destinations.warehouse import LOAD_TIME_COLUMN, WarehouseKind
from tests.pgcopy import read_binary_copy
from tests.postgres import PostgresDatabase, PostgresServer

BATCH_SIZE = 1_000
DEFAULT_EVENTS = 200_000
QUICK_EVENTS = 20_000
TARGET_RATIO = 0.7
EVENT_TABLE = "order_completed"
SCHEMA = "tributary"
START = datetime(2024, 5, 1, tzinfo=UTC)
# psycopg's `set_types` name of each column type's binary form.
COPY_TYPES = {
    "text": "text",
    "bigint": "int8",
    "double precision": "float8",
    "boolean": "bool",
    "timestamp with time zone": "timestamptz",
}

USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
]
PRODUCTS = [("p-1", "SKU-TEE", "T-shirt", 19.99), ("p-2", "SKU-MUG", "Mug", 9.5), ("p-3", "SKU-CAP", "Cap", 24.0)]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def order_completed(index: int, rng: random.Random) -> dict[str, Any]:
    """One analytics.js-like `Order Completed`: browser context, ecommerce properties, four timestamps."""
    at = START + timedelta(milliseconds=700 * index + rng.randrange(500))
    products = [
        {"product_id": pid, "sku": sku, "name": name, "price": price, "quantity": rng.randint(1, 3)}
        for pid, sku, name, price in rng.sample(PRODUCTS, rng.randint(1, 3))
    ]
    revenue = round(sum(product["price"] * product["quantity"] for product in products), 2)
    properties: dict[str, Any] = {
        "orderId": f"order-{index}",
        "affiliation": "web-store",
        "total": round(revenue + 4.99, 2),
        "revenue": revenue,
        "shipping": 4.99,
        "tax": round(revenue * 0.2, 2),
        "currency": "EUR",
        "products": products,
    }
    if rng.random() < 0.2:
        properties["coupon"] = rng.choice(["SPRING", "WELCOME10"])
        properties["discount"] = round(revenue * 0.1, 2)
    context: dict[str, Any] = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "ip": f"198.51.100.{rng.randrange(256)}",
        "locale": rng.choice(["en-US", "fr-FR", "de-DE"]),
        "timezone": "Europe/Paris",
        "userAgent": rng.choice(USER_AGENTS),
        "page": {
            "path": "/checkout/complete",
            "referrer": "https://shop.example.com/checkout",
            "search": "",
            "title": "Thank you",
            "url": "https://shop.example.com/checkout/complete",
        },
    }
    if rng.random() < 0.3:
        context["campaign"] = {"name": "spring-sale", "source": "newsletter", "medium": "email"}
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": f"user-{rng.randrange(50_000)}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "properties": properties,
        "context": context,
        "timestamp": iso(at),
        "originalTimestamp": iso(at - timedelta(milliseconds=rng.randrange(50))),
        "sentAt": iso(at + timedelta(milliseconds=120)),
        "receivedAt": iso(at + timedelta(milliseconds=180 + rng.randrange(60))),
    }


@dataclass
class TableRows:
    """One table's rows of a batch, as the bare COPY writes them: its columns (uuid_ts last), their `set_types`
    names, and the tuples."""

    table: str
    columns: list[str]
    copy_types: list[str]
    tuples: list[tuple[Any, ...]]


@dataclass
class Workload:
    batches: list[Batch]
    # Per batch: the rows of each table ours writes, in the order ours writes them.
    rows: list[list[TableRows]]

    @property
    def events(self) -> int:
        return sum(len(batch) for batch in self.batches)


def build_workload(count: int, seed: int, data_types: dict[str, dict[str, str]]) -> Workload:
    """The batches for ours, and the same rows as ready tuples for the bare COPY (`data_types`: the tables' column
    types, as ours made them): ours' plan and payloads of each batch, read back into Python values."""
    rng = random.Random(seed)
    load_time_us = time.time_ns() // 1000
    batches: list[Batch] = []
    rows: list[list[TableRows]] = []
    timestamp = "timestamp with time zone"
    for start in range(0, count, BATCH_SIZE):
        events = [order_completed(index, rng) for index in range(start, min(count, start + BATCH_SIZE))]
        message_ids = [event["messageId"] for event in events]
        batch = Batch("warehouse-bench", orjson.dumps(events), message_ids)
        batches.append(batch)
        plan = _core.plan_warehouse_batch(batch.raw, message_ids)
        batch_rows = []
        for table in plan.tables:
            types = [data_types[table.name][column] for column in table.columns]
            payload = plan.encode(table.index, types, load_time_us).payload
            batch_rows.append(
                TableRows(
                    table.name,
                    [*table.columns, LOAD_TIME_COLUMN],
                    [COPY_TYPES[data_type] for data_type in [*types, timestamp]],
                    read_binary_copy(payload, [*types, timestamp]),
                )
            )
        rows.append(batch_rows)
    return Workload(batches, rows)


async def load_ours(database: PostgresDatabase, batches: list[Batch]) -> float:
    """Seconds to deliver every batch through the destination (its connection made before the clock)."""
    kind = WarehouseKind()
    destination = kind.create("warehouse-bench", kind.validate({"dsn": database.dsn, "allow": ["127.0.0.1"]}))
    try:
        started = time.perf_counter()
        for batch in batches:
            await destination.deliver(batch)
        return time.perf_counter() - started
    finally:
        await destination.close()


def load_bare(database: PostgresDatabase, workload: Workload, tables: list[str], schema: str) -> float:
    """Seconds to COPY the prepared tuples of `tables`, one COPY per table and one transaction per batch."""
    with psycopg.connect(database.dsn) as connection:
        started = time.perf_counter()
        for batch_rows in workload.rows:
            with connection.cursor() as cursor:
                for table_rows in batch_rows:
                    if table_rows.table not in tables:
                        continue
                    names = sql.SQL(", ").join(map(sql.Identifier, table_rows.columns))
                    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                        sql.Identifier(schema, table_rows.table), names
                    )
                    with cursor.copy(statement) as copy:
                        copy.set_types(table_rows.copy_types)
                        for row in table_rows.tuples:
                            copy.write_row(row)
            connection.commit()
        return time.perf_counter() - started


def count_rows(database: PostgresDatabase, schema: str, table: str) -> int:
    return int(database.query(f'SELECT count(*) FROM "{schema}"."{table}"')[0][0])


def make_bare_tables(
    database: PostgresDatabase, schema: str, tables: list[str], data_types: dict[str, dict[str, str]]
) -> None:
    """Tables like ours: the same columns and types, and the primary key on `id`."""
    database.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table in tables:
        columns = [
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(data_type))
            for name, data_type in data_types[table].items()
        ]
        database.execute(
            sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY (id))").format(
                sql.Identifier(schema, table), sql.SQL(", ").join(columns)
            )
        )


def time_ours(database: PostgresDatabase, workload: Workload, tables: list[str]) -> float:
    seconds = asyncio.run(load_ours(database, workload.batches))
    for table in tables:
        assert count_rows(database, SCHEMA, table) == workload.events, f"ours lost rows of {table}"
    return seconds


@dataclass
class Figures:
    events: int
    batch_size: int
    rounds: int
    ours_events_per_s: float
    ours_rows_per_s: float
    bare_same_rows_per_s: float
    bare_one_table_rows_per_s: float
    ratio_same_rows: float
    ratio_one_table: float


def run(count: int, rounds: int, seed: int) -> Figures:
    server = PostgresServer.start()
    try:
        # A first database made by ours: the tables' columns and types, which the bare COPY's tuples follow. Its
        # sample has every optional property and context object (a coupon, a campaign), as every batch has.
        probe = PostgresDatabase(server, "probe")
        server.execute('CREATE DATABASE "probe"')
        sample_rng = random.Random(seed)
        sample = [order_completed(index, sample_rng) for index in range(BATCH_SIZE)]
        asyncio.run(load_ours(probe, [Batch.of_events("probe", sample, [event["messageId"] for event in sample])]))
        data_types = {table: probe.columns(table) for table in probe.tables()}
        workload = build_workload(count, seed, data_types)
        tables = [table_rows.table for table_rows in workload.rows[0]]
        gc.collect()
        gc.freeze()  # the workload is long-lived: keep it out of every collection, for both sides
        best_ours = best_same = best_one = float("inf")
        for round_number in range(rounds):
            database = PostgresDatabase(server, f"bench_{round_number}")
            server.execute(f'CREATE DATABASE "{database.name}"')

            # Each side starts from a checkpoint, and the order alternates: neither always pays the other's WAL.
            sides = ["ours", "bare_same", "bare_one"] if round_number % 2 == 0 else ["bare_same", "bare_one", "ours"]
            seconds: dict[str, float] = {}
            for side in sides:
                database.execute("CHECKPOINT")
                if side == "ours":
                    seconds[side] = time_ours(database, workload, tables)
                else:
                    side_tables = tables if side == "bare_same" else [EVENT_TABLE]
                    make_bare_tables(database, side, side_tables, data_types)
                    seconds[side] = load_bare(database, workload, side_tables, side)
            best_ours = min(best_ours, seconds["ours"])
            best_same = min(best_same, seconds["bare_same"])
            best_one = min(best_one, seconds["bare_one"])
            server.execute(f'DROP DATABASE "{database.name}"')
            print(
                f"round {round_number + 1}/{rounds}: ours {workload.events / seconds['ours']:,.0f} events/s,"
                f" bare same rows {workload.events * len(tables) / seconds['bare_same']:,.0f} rows/s",
                file=sys.stderr,
            )
    finally:
        server.close()
    events = workload.events
    ours_rows = events * len(tables) / best_ours
    same_rows = events * len(tables) / best_same
    one_table_rows = events / best_one
    return Figures(
        events=events,
        batch_size=BATCH_SIZE,
        rounds=rounds,
        ours_events_per_s=events / best_ours,
        ours_rows_per_s=ours_rows,
        bare_same_rows_per_s=same_rows,
        bare_one_table_rows_per_s=one_table_rows,
        ratio_same_rows=ours_rows / same_rows,
        ratio_one_table=(events / best_ours) / one_table_rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.warehouse_load", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events instead of {DEFAULT_EVENTS:,}")
    parser.add_argument("--events", type=int, help="events to load (overrides --quick)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side; the best is reported")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    count = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    figures = run(count, args.rounds, args.seed)
    print(
        f"warehouse load: {figures.events:,} track events, batches of {figures.batch_size:,}, best of {figures.rounds}"
    )
    print(
        f"  ours (deliver: decode, schema, casts, dedupe)     {figures.ours_events_per_s:>10,.0f} events/s"
        f"  = {figures.ours_rows_per_s:>10,.0f} rows/s (tracks + {EVENT_TABLE})"
    )
    print(f"  bare psycopg COPY, the same rows (two tables)     {figures.bare_same_rows_per_s:>10,.0f} rows/s")
    print(f"  bare psycopg COPY, one table ({EVENT_TABLE})   {figures.bare_one_table_rows_per_s:>10,.0f} rows/s")
    verdict = "meets" if figures.ratio_same_rows >= TARGET_RATIO else "misses"
    print(f"  ratio, same rows: {figures.ratio_same_rows:.2f}x ({verdict} the {TARGET_RATIO}x target)")
    print(f"  ratio, events/s against one table's rows/s: {figures.ratio_one_table:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
