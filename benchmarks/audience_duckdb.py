"""The Engage benchmark's baseline: the same audience as SQL in in-process DuckDB.

Two tables are built in memory from the generated columns (``AudienceData``), which DuckDB scans:
``traits(user_id, plan, … 19 more)`` and ``events(user_id, event, ts)``, with the types an
event warehouse has (``user_id`` and ``event`` as VARCHAR, ``ts`` as TIMESTAMP). The events
table comes in two orders: **unsorted** (a seeded shuffle: no zone map can skip a row group)
and **sorted by (event, ts)**, the layout that suits this query best (the name and the window
select a contiguous range). Building them is not timed; only the query is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np

from benchmarks.audience_workload import CHURNED, EVENT_NAMES, ORDER_COMPLETED, AudienceData

UNSORTED = "events_unsorted"
SORTED = "events_sorted"
WINDOW = timedelta(days=30)
MIN_ORDERS = 3

# The audience `trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3
# AND NOT event('Churned').count() >= 1`, by the reference's semantics (tests/audience_reference.py):
# within(30 days) is now - 30 days <= ts <= now, both ends included; a stream without a window
# keeps every event.
AUDIENCE_SQL = """
SELECT t.user_id
FROM traits AS t
JOIN (
    SELECT user_id FROM {events}
    WHERE event = '{order}' AND ts >= TIMESTAMP '{since}' AND ts <= TIMESTAMP '{now}'
    GROUP BY user_id
    HAVING count(*) >= {min_orders}
) AS orders ON orders.user_id = t.user_id
WHERE t.plan = 'pro'
  AND NOT EXISTS (SELECT 1 FROM {events} AS c WHERE c.event = '{churned}' AND c.user_id = t.user_id)
"""


def audience_sql(events: str, now_s: int) -> str:
    """The audience's query over the table ``events``, evaluated at ``now_s``."""
    stamp = "%Y-%m-%d %H:%M:%S"
    now = datetime.fromtimestamp(now_s, UTC)
    return AUDIENCE_SQL.format(
        events=events,
        order=ORDER_COMPLETED,
        churned=CHURNED,
        since=(now - WINDOW).strftime(stamp),
        now=now.strftime(stamp),
        min_orders=MIN_ORDERS,
    )


def build_tables(data: AudienceData, *, seed: int, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with ``traits``, ``events_unsorted`` and ``events_sorted``. DuckDB
    scans the numpy columns itself and makes the strings (``'u' || n``, the names) in SQL."""
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads = {threads}")
    shuffle = np.random.default_rng([seed, 3]).permutation(data.n_events)
    traits_columns = {"profile": np.arange(data.n_profiles), **data.traits}
    event_columns = {"profile": data.user[shuffle], "name": data.name[shuffle], "seconds": data.ts[shuffle]}
    con.register("traits_columns", traits_columns)
    con.register("event_columns", event_columns)
    names = "[" + ", ".join(f"'{name}'" for name in EVENT_NAMES) + "]"
    con.execute("CREATE TABLE traits AS SELECT 'u' || profile AS user_id, * EXCLUDE (profile) FROM traits_columns")
    con.execute(
        f"CREATE TABLE {UNSORTED} AS SELECT 'u' || profile AS user_id, {names}[name::INTEGER + 1] AS event, "
        "epoch_ms(seconds * 1000) AS ts FROM event_columns"
    )
    con.execute(f"CREATE TABLE {SORTED} AS SELECT * FROM {UNSORTED} ORDER BY event, ts")
    con.unregister("traits_columns")
    con.unregister("event_columns")
    return con


def members(con: duckdb.DuckDBPyConnection, table: str, now_s: int) -> set[int]:
    """The audience's members by the query on ``table``, as profile numbers."""
    return {int(user_id[1:]) for (user_id,) in con.execute(audience_sql(table, now_s)).fetchall()}


def member_check_sql(events: str, now_s: int) -> str:
    """The audience's query restricted to one ``user_id`` (the parameter): a membership check."""
    return audience_sql(events, now_s).rstrip() + "\n  AND t.user_id = $1\n"


def size_sql(events: str, now_s: int) -> str:
    """How many members the audience has."""
    return f"SELECT count(*) FROM ({audience_sql(events, now_s)})"
