"""Fuzz target: the query language's parser and type checker.

``CreateAudience``, ``UpdateAudience`` and ``Preview`` parse and check a definition before
anything else (``audiences::parse_query``: lexer, parser, checker); ``_core.check_query`` is that
step alone, so this target needs no engine. The input, read as UTF-8 (invalid bytes replaced, as
a gRPC string could not carry them), is checked as each of the four kinds of definition (users or
accounts, audience or computed trait).

Documented outcomes: the canonical text, or ``InvalidRequest`` naming a line and column. The
canonical text must check again to itself (``parse(render(d)) == d``, the module's invariant).
"""

from __future__ import annotations

from pathlib import Path

from fuzz.runner import OneInput, Target, main

KINDS = [(accounts, computed) for accounts in (False, True) for computed in (False, True)]


def prepare(work_dir: Path) -> OneInput:
    from cdp_server import _core

    def one_input(data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        for accounts, computed_trait in KINDS:
            try:
                canonical = _core.check_query(text, accounts=accounts, computed_trait=computed_trait)
            except _core.InvalidRequest as refused:
                assert "line " in str(refused) and "column " in str(refused), str(refused)
                continue
            again = _core.check_query(canonical, accounts=accounts, computed_trait=computed_trait)
            assert again == canonical, f"{text!r} → {canonical!r} → {again!r}"

    return one_input


TARGET = Target("query", prepare)

if __name__ == "__main__":
    main(TARGET)
