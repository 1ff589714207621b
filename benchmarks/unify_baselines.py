"""The baselines of bulk resolution: connected components of the same identifier graph, computed
by networkx and by DuckDB min-label propagation, each timed from the edge list to components.

Both get the identifiers as the engine does, as "type:value" strings, so turning strings into
node ids (most of the work, see DESIGN.md §10) is inside every timed section.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import duckdb
import networkx as nx  # type: ignore[import-untyped]

from benchmarks.unify_workload import EdgeList

# A fixpoint is reached after at most (component diameter + 1) rounds; this only guards a bug.
MAX_ROUNDS = 1_000


@dataclass(frozen=True)
class Components:
    """A partition of the identifiers, timed.

    Attributes:
        seconds: Time from the edge list to the partition.
        count: Number of components.
        component_of: Each identifier's component, as the frozen set of its identifiers
            (only filled where the caller asked for it: it is large).
        details: Anything else worth reporting (rounds, load time).
    """

    seconds: float
    count: int
    component_of: dict[str, frozenset[str]]
    details: dict[str, float | int]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The baselines at their fastest: the collector would otherwise rescan the millions of
    objects they build (and the workload held beside them), up to half of networkx's time."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def networkx_components(graph: EdgeList) -> Components:
    """networkx: build the graph (nodes, then edges), then ``connected_components``."""
    nodes = graph.nodes
    edges = graph.string_edges()  # prepared before the clock: the input is the string edge list
    with _no_gc():
        started = time.perf_counter()
        g = nx.Graph()
        g.add_nodes_from(nodes)
        g.add_edges_from(edges)
        parts = [frozenset(cast("set[str]", part)) for part in nx.connected_components(g)]
        seconds = time.perf_counter() - started
    del g
    component_of = {identifier: part for part in parts for identifier in part}
    return Components(seconds=seconds, count=len(parts), component_of=component_of, details={})


def write_csv(graph: EdgeList, directory: Path) -> tuple[Path, Path]:
    """The edge list as two CSV files (nodes, edges) for DuckDB to read, written untimed."""
    nodes_csv, edges_csv = directory / "nodes.csv", directory / "edges.csv"
    with nodes_csv.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id"])
        writer.writerows([node] for node in graph.nodes)
    with edges_csv.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["src", "dst"])
        writer.writerows(graph.string_edges())
    return nodes_csv, edges_csv


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r}")
    return int(row[0])


# Identifiers are numbered, edges turned into numbers and doubled (both directions), every
# identifier starts as its own label; a round gives each identifier the least label among its
# own and its neighbours'.
_LOAD = (
    "CREATE TABLE node AS SELECT id, (row_number() OVER ())::INTEGER AS n "
    "FROM read_csv('{nodes}', header = true, columns = {{'id': 'VARCHAR'}})",
    "CREATE TABLE e AS SELECT a.n AS src, b.n AS dst "
    "FROM read_csv('{edges}', header = true, columns = {{'src': 'VARCHAR', 'dst': 'VARCHAR'}}) x "
    "JOIN node a ON x.src = a.id JOIN node b ON x.dst = b.id",
    "CREATE TABLE arc AS SELECT src, dst FROM e UNION ALL SELECT dst, src FROM e",
    "CREATE TABLE label AS SELECT n, n AS l FROM node",
)
_ROUND = (
    "CREATE OR REPLACE TABLE next AS "
    "SELECT label.n, LEAST(label.l, COALESCE(m.l, label.l)) AS l FROM label LEFT JOIN "
    "(SELECT arc.dst AS n, MIN(label.l) AS l FROM arc JOIN label ON arc.src = label.n GROUP BY arc.dst) m USING (n)"
)
_CHANGED = "SELECT count(*) FROM next JOIN label USING (n) WHERE next.l <> label.l"


def _propagate(con: duckdb.DuckDBPyConnection) -> int:
    """Rounds until no label changes; returns how many were run."""
    for rounds in range(1, MAX_ROUNDS + 1):
        con.execute(_ROUND)
        changed = _scalar(con, _CHANGED)
        con.execute("DROP TABLE label")
        con.execute("ALTER TABLE next RENAME TO label")
        if changed == 0:
            return rounds
    raise RuntimeError(f"label propagation did not converge in {MAX_ROUNDS} rounds")


def duckdb_components(graph: EdgeList, *, tmp_root: Path | None = None) -> Components:
    """In-process DuckDB: load the CSV edge list, number the identifiers, then propagate the
    minimum label over both edge directions until no label changes (a round is one join and
    one group-by over all edges)."""
    with tempfile.TemporaryDirectory(prefix="bench-duckdb-", dir=tmp_root) as tmp:
        nodes_csv, edges_csv = write_csv(graph, Path(tmp))
        con = duckdb.connect(":memory:")
        try:
            with _no_gc():
                started = time.perf_counter()
                for statement in _LOAD:
                    con.execute(statement.format(nodes=nodes_csv, edges=edges_csv))
                loaded = time.perf_counter() - started
                rounds = _propagate(con)
                count = _scalar(con, "SELECT count(DISTINCT l) FROM label")
                seconds = time.perf_counter() - started
        finally:
            con.close()
    return Components(
        seconds=seconds, count=count, component_of={}, details={"rounds": rounds, "load_s": round(loaded, 3)}
    )
