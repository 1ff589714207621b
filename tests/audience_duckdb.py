"""The benchmark audience (`trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3 AND NOT
event('Churned').count() >= 1`) as a DuckDB query over a reference world: a second oracle, written in SQL, for the
reference's tests and the server's."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
from audience_reference import World


def bench_audience_members(world: World, now: datetime) -> set[str]:
    """The ids of the world's profiles in the benchmark audience at `now`."""
    db = duckdb.connect()
    db.execute("CREATE TABLE events (profile_id VARCHAR, name VARCHAR, ts TIMESTAMP)")
    db.execute("CREATE TABLE traits (profile_id VARCHAR, key VARCHAR, value VARCHAR)")
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?)",
        [
            (pid, e.name, e.timestamp.astimezone(UTC).replace(tzinfo=None))
            for pid, p in world.profiles.items()
            for e in p.events
        ],
    )
    db.executemany(
        "INSERT INTO traits VALUES (?, ?, ?)",
        [(pid, key, value) for pid, p in world.profiles.items() for key, value in p.traits.items()],
    )
    rows = db.execute(
        """
        SELECT t.profile_id FROM traits t
        WHERE t.key = 'plan' AND t.value = 'pro'
          AND (SELECT count(*) FROM events e
               WHERE e.profile_id = t.profile_id AND e.name = 'Order Completed'
                 AND e.ts BETWEEN $now - INTERVAL 30 DAY AND $now) >= 3
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.profile_id = t.profile_id AND e.name = 'Churned')
        """,
        {"now": now.astimezone(UTC).replace(tzinfo=None)},
    ).fetchall()
    return {pid for (pid,) in rows}
