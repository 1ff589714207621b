"""Coverage-guided fuzzing (atheris, libFuzzer) of the three surfaces that read untrusted bytes.

One module per target, each a ``Target`` run by ``fuzz.runner``:

- ``fuzz.http_json``: a Tracking API body as the HTTP server hands it to the engine
  (``Engine::submit_json`` through ``_core.Engine.send_json``, with a route's call type or none);
- ``fuzz.ingest_proto``: the bytes of a ``SendRequest`` and of a ``StreamRequest`` as the gRPC
  IngestService hands them to ``Engine.send`` and ``Engine.submit_stream``;
- ``fuzz.query``: a definition through the parse and type check that ``CreateAudience`` and
  ``Preview`` run (``_core.check_query``), every kind and expectation.

A crash is a Rust panic (pyo3's ``PanicException``), any exception other than the documented one
for bad input (``_core.InvalidRequest``), a broken invariant the harness checks (an
``AssertionError``), or a hang (libFuzzer's ``-timeout``). libFuzzer writes the input to
``fuzz/crashes/`` (``make fuzz``); once fixed it is kept in ``fuzz/regressions/<target>/``, which
``tests/test_fuzz.py`` replays in every ``make test``.

Run one by hand: ``python -m fuzz.query -max_total_time=60 fuzz/corpus/query`` (any libFuzzer
flag works; ``--work-dir`` picks where an engine keeps its data, ``--instrumented`` loads the
coverage-instrumented engine of ``make fuzz-build``).

Coverage: atheris instruments Python bytecode only, and the harnesses are a few lines of Python
over the native engine. The engine as ``maturin develop`` builds it (``cdp_server._core``) has no
coverage instrumentation, so with it libFuzzer gets no feedback from the Rust code: it mutates the
seed corpus (with the structure-aware JSON mutator and the dictionaries here) but cannot tell an
input that reached new code from one that did not. ``make fuzz`` therefore first builds an
instrumented copy of the engine (``make fuzz-build``: SanitizerCoverage inline 8-bit counters, PC
table and compare tracing, with debug assertions and overflow checks, into ``target/fuzz``) and
the harnesses load that copy with ``--instrumented``; atheris's libFuzzer then sees every edge of
the Rust code. The short run of ``make test`` uses the ordinary build (no second build in the
test run): it is a smoke test of the harnesses and of the seeds, not a search.
"""
