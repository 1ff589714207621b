"""The `cdp` command line against a real server: sources, import, tail, events, errors, serve.

Every command runs as a user would run it, in its own process (`python -m cdp_server ...`), with
no TRIBUTARY_* variables from the environment of the test run."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rpc import IDENTIFY, Rpc, track
from tributary._proto.cdp.v1 import event_pb2

from cdp_server.cli.export_files import LineMap

if TYPE_CHECKING:
    from conftest import ServerProcess

COMMAND_TIMEOUT_SECS = 60.0


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIBUTARY_") and k != "FORCE_COLOR"}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1"}


def cdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cdp_server", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECS,
        check=False,
    )


def admin(server: ServerProcess) -> list[str]:
    return ["--target", server.target, "--token", server.admin_token]


def ingest(server: ServerProcess, write_key: str | None = None) -> list[str]:
    return ["--target", server.target, "--write-key", write_key or server.write_key]


def json_out(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.stdout, f"no output; stderr: {result.stderr}"
    return json.loads(result.stdout)


def stored_events(server: ServerProcess, identifier: str) -> list[dict[str, Any]]:
    """Every event carrying the identifier, oldest first by event time, as `cdp events --json` prints them."""
    result = cdp(
        "events", identifier, "--only-identifier", "--json", "--oldest-first", "--limit", "1000", *admin(server)
    )
    assert result.returncode == 0, result.stderr
    page = json_out(result)
    assert page["next_cursor"] is None
    return list(page["events"])


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- sources ---------------------------------------------------------------------------------


def test_source_create_prints_a_write_key_once_and_it_ingests(server: ServerProcess, tmp_path: Path) -> None:
    created = cdp("source", "create", "website", *admin(server))
    assert created.returncode == 0, created.stderr
    write_key = created.stdout.strip()
    assert write_key and "\n" not in write_key  # only the key on stdout: KEY=$(cdp source create ...)
    assert "shown only this once" in created.stderr

    listed = cdp("source", "list", "--json", *admin(server))
    assert listed.returncode == 0, listed.stderr
    assert {"development", "website"} <= {source["name"] for source in json_out(listed)}
    assert write_key not in listed.stdout

    events = write_jsonl(tmp_path / "web.jsonl", ['{"type":"track","userId":"w1","event":"Visited","messageId":"w-1"}'])
    imported = cdp("import", str(events), "--json", *ingest(server, write_key))
    assert imported.returncode == 0, imported.stderr
    assert json_out(imported)["stored"] == 1
    assert [e["messageId"] for e in stored_events(server, "user_id:w1")] == ["w-1"]


# -- import ----------------------------------------------------------------------------------

TOUR_EVENTS: list[dict[str, Any]] = [
    {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}, "messageId": "imp-1"},
    # No messageId (one is derived from the content), and a sentAt from an old export.
    {
        "type": "track",
        "userId": "ann",
        "event": "Signed Up",
        "properties": {"plan": "free"},
        "timestamp": "2020-01-01T00:00:00Z",
        "sentAt": "2020-01-01T01:00:00Z",
    },
    {"type": "page", "userId": "ann", "name": "Home", "messageId": "imp-3"},
]


@pytest.mark.parametrize("form", ["json-lines", "json-array"])
def test_import_stores_a_file_once_however_often_it_runs(server: ServerProcess, tmp_path: Path, form: str) -> None:
    path = tmp_path / "events.json"
    if form == "json-lines":
        write_jsonl(path, [json.dumps(event) for event in TOUR_EVENTS])
    else:
        path.write_text(json.dumps(TOUR_EVENTS, indent=2))  # elements span several lines

    first = cdp("import", str(path), "--json", *ingest(server))
    assert first.returncode == 0, first.stderr
    report = json_out(first)
    assert (report["format"], report["read"], report["stored"], report["duplicates"]) == (form, 3, 3, 0)
    assert report["ok"] and report["problems"] == []

    again = cdp("import", str(path), *ingest(server))  # the human report, on stderr
    assert again.returncode == 0, again.stderr
    assert "0 stored, 3 duplicates" in again.stderr
    again_json = json_out(cdp("import", str(path), "--json", *ingest(server)))
    assert (again_json["stored"], again_json["duplicates"]) == (0, 3)

    stored = stored_events(server, "user_id:ann")
    assert [e["type"] for e in stored] == ["track", "identify", "page"], "by event time: the track happened in 2020"
    signed_up = stored[0]
    assert signed_up["messageId"].startswith("content-")
    # sentAt was dropped: the export's own time is kept, not shifted by today's clock skew.
    assert "sentAt" not in signed_up
    assert signed_up["timestamp"] == "2020-01-01T00:00:00.000Z"


def test_import_reports_bad_lines_by_number_and_stores_the_rest(server: ServerProcess, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            '{"type":"track","userId":"bo","event":"First","messageId":"ok-1"}',
            '{"type":"track","userId":"bo",',  # 2: not JSON
            "",  # 3: blank, skipped
            '{"type":"bogus","userId":"bo","messageId":"bad-type"}',  # 4: refused: no such call
            '{"type":"track","event":"Nobody","messageId":"no-user"}',  # 5: refused by the server
            "[1, 2]",  # 6: not an object
            '{"type":"track","userId":"bo","event":"Last","messageId":"ok-2"}',
        ],
    )
    result = cdp("import", str(path), "--json", *ingest(server))
    assert result.returncode == 1
    report = json_out(result)
    assert (report["stored"], report["rejected"], report["unreadable"], report["ok"]) == (2, 2, 2, False)
    assert report["complete"] is True
    problems = [(p["line"], p["kind"], p.get("field")) for p in report["problems"]]
    assert problems == [
        (2, "unreadable", None),
        (4, "rejected", "type"),
        (5, "rejected", "userId"),
        (6, "unreadable", None),
    ]
    assert "error:" in result.stderr

    human = cdp("import", str(path), *ingest(server))
    assert human.returncode == 1
    for needle in ("line 2: unreadable", "line 4: rejected (type)", "line 5: rejected (userId)", "line 6: unreadable"):
        assert needle in human.stderr
    assert "2 events rejected" in human.stderr and "2 unreadable lines skipped" in human.stderr
    assert [e["messageId"] for e in stored_events(server, "user_id:bo")] == ["ok-1", "ok-2"]


def test_import_stops_at_a_broken_json_array_element_after_storing_those_before(
    server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(
        "[\n"
        '{"type":"track","userId":"cy","event":"A","messageId":"a-1"},\n'
        '{"type":"track",\n "event":"No user","messageId":"a-2"},\n'  # 3-4: rejected by the server
        '{"type":"track",\n'  # 5: not closed; the reader fails where line 6 begins
        '{"type":"track","userId":"cy","event":"B","messageId":"a-3"}\n'
        "]\n"
    )
    result = cdp("import", str(path), "--json", *ingest(server))
    assert result.returncode == 1
    report = json_out(result)
    assert (report["stored"], report["rejected"], report["complete"], report["stopped_at_line"]) == (1, 1, False, 6)
    assert [(p["line"], p["kind"]) for p in report["problems"]] == [(3, "rejected"), (6, "unreadable")]
    assert "the JSON array is broken at line 6" in result.stderr
    assert [e["messageId"] for e in stored_events(server, "user_id:cy")] == ["a-1"]


def test_reimporting_an_export_made_again_later_stores_nothing_twice(server: ServerProcess, tmp_path: Path) -> None:
    # The same events exported twice: other sentAt values and key order, no messageIds.
    events = [
        {"type": "track", "userId": "dee", "event": f"E{n}", "timestamp": "2021-01-01T00:00:00Z"} for n in range(3)
    ]
    first = [{**event, "sentAt": "2021-01-01T00:00:01Z"} for event in events]
    later = [dict(reversed(list({**event, "sentAt": "2023-06-01T00:00:00Z"}.items()))) for event in events]
    for export in (first, later):
        path = write_jsonl(tmp_path / "export.jsonl", [json.dumps(event) for event in export])
        assert cdp("import", str(path), *ingest(server)).returncode == 0
    assert sorted(e["event"] for e in stored_events(server, "user_id:dee")) == ["E0", "E1", "E2"]


def wait_for_first_event(server: ServerProcess, identifier: str) -> None:
    """Returns once the server has stored an event of `identifier`: an import is under way."""
    rpc = Rpc(server)
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECS
    while time.monotonic() < deadline:
        try:
            if rpc.events(identifier, limit=1):
                return
        except grpc.RpcError:
            pass
        time.sleep(0.02)
    pytest.fail(f"no event of {identifier} was stored")


def test_import_waits_out_a_server_restart_and_a_failed_import_says_what_was_stored(
    server: ServerProcess, tmp_path: Path
) -> None:
    def bulk(user: str, count: int) -> Path:
        lines = [
            json.dumps({"type": "track", "userId": f"{user}-{n % 50}", "event": "Bulk", "n": n}) for n in range(count)
        ]
        return write_jsonl(tmp_path / f"{user}.jsonl", lines)

    def start_import(path: Path, *options: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "cdp_server", "import", str(path), "--json", "--batch-size", "100"]
        return subprocess.Popen(
            [*command, *options, *ingest(server)],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    importing = start_import(bulk("eve", 300_000))
    wait_for_first_event(server, "user_id:eve-0")
    server.kill()
    time.sleep(3.0)  # longer than a handful of quick retries
    server.start()
    out, err = importing.communicate(timeout=COMMAND_TIMEOUT_SECS)
    assert importing.returncode == 0, err
    report = json.loads(out)
    assert report["stored"] + report["duplicates"] == 300_000 and report["ok"]
    assert report["reconnects"] >= 1  # it did meet the outage

    # With no retries allowed, an outage ends the import: it says what is known to be stored.
    importing = start_import(bulk("fay", 300_000), "--max-retries", "0")
    wait_for_first_event(server, "user_id:fay-0")
    server.kill()
    out, err = importing.communicate(timeout=COMMAND_TIMEOUT_SECS)
    server.start()
    assert importing.returncode == 1
    report = json.loads(out)
    assert report["complete"] is False and report["error"] and report["stored"] < 300_000
    assert f"{report['stored']:,} stored" in err and "stores nothing twice" in err
    stored = len(Rpc(server).events("user_id:fay-0"))
    assert stored * 50 >= report["stored"]  # what it reported stored is stored


def test_the_import_rate_is_not_shown_for_an_import_too_short_to_measure() -> None:
    from rich.progress import Progress

    from cdp_server.cli.importer import EventRateColumn

    column = EventRateColumn()
    with Progress(column, disable=True) as progress:
        task = progress.add_task("import", total=3)
        progress.advance(task, 3)
        assert str(column.render(progress.tasks[0])) == "- events/s"


def test_line_map_finds_the_line_of_every_stream_position() -> None:
    lines = [1, 2, 5, 6, 7, 10, 14, 15]  # blank, broken and multi-line messages between them
    line_map = LineMap()
    for position, line in enumerate(lines):
        line_map.add(position, line)
    assert [line_map.line(position) for position in range(len(lines))] == lines
    assert line_map.line(-1) is None


# -- tail ------------------------------------------------------------------------------------


def test_tail_prints_matching_events_as_json_lines_while_they_arrive(server: ServerProcess) -> None:
    command = [sys.executable, "-m", "cdp_server", "tail", "--json", "--limit", "3", "--type", "track"]
    command += ["--event", "Order Completed", *admin(server)]
    rpc = Rpc(server)
    sent: list[str] = []
    with subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as tail:
        try:
            # The tail starts from "now" once its call is up: send until it has seen its three events.
            deadline = time.monotonic() + 30
            while tail.poll() is None and time.monotonic() < deadline:
                n = len(sent)
                noise = [
                    event_pb2.Event(type=IDENTIFY, message_id=f"id-{n}", user_id="dee"),
                    track(f"other-{n}", user_id="dee", name="Other"),
                ]
                rpc.send([*noise, track(f"oc-{n}", user_id="dee")])
                sent.append(f"oc-{n}")
                time.sleep(0.1)
            out, err = tail.communicate(timeout=10)
        finally:
            tail.kill()
            rpc.close()
    assert tail.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 3
    assert all(line["type"] == "track" and line["event"] == "Order Completed" for line in lines)
    received = [line["messageId"] for line in lines]
    assert received == sorted(received, key=sent.index)  # in the order they were accepted
    assert all(line["sourceId"] >= 1 and line["userId"] == "dee" for line in lines)


# -- events ----------------------------------------------------------------------------------


def test_events_pages_newest_first_with_limit_and_cursor(server: ServerProcess) -> None:
    rpc = Rpc(server)
    try:
        rpc.send([track(f"p{i}", user_id="pat") for i in range(5)])
    finally:
        rpc.close()
    pages: list[list[str]] = []
    cursor: str | None = ""
    while cursor is not None:
        result = cdp("events", "user_id:pat", "--json", "--limit", "2", "--cursor", cursor, *admin(server))
        assert result.returncode == 0, result.stderr
        page = json_out(result)
        pages.append([event["messageId"] for event in page["events"]])
        cursor = page["next_cursor"]
    assert pages == [["p4", "p3"], ["p2", "p1"], ["p0"]]

    table = cdp("events", "user_id:pat", "--limit", "2", *admin(server))
    assert table.returncode == 0, table.stderr
    assert "p4" in table.stdout and "p2" not in table.stdout
    assert "more: cdp events user_id:pat --cursor" in table.stderr


def test_events_lists_the_whole_profile_by_event_time_or_one_identifier(server: ServerProcess, tmp_path: Path) -> None:
    lines = [
        '{"type":"page","anonymousId":"v-1","name":"Home","messageId":"e2","timestamp":"2026-04-01T10:00:00Z"}',
        '{"type":"identify","userId":"eve","anonymousId":"v-1","traits":{"email":"eve@x.com"},"messageId":"e3",'
        '"timestamp":"2026-04-01T11:00:00Z"}',
        '{"type":"track","userId":"eve","event":"Ordered","messageId":"e4","timestamp":"2026-04-02T00:00:00Z"}',
        # Arrives last, happened first: listed by when it happened.
        '{"type":"page","anonymousId":"v-1","name":"Pricing","messageId":"e1","timestamp":"2026-03-31T00:00:00Z"}',
    ]
    assert cdp("import", str(write_jsonl(tmp_path / "e.jsonl", lines)), *ingest(server)).returncode == 0

    def listed(*args: str) -> list[str]:
        return [event["messageId"] for event in json_out(cdp("events", *args, "--json", *admin(server)))["events"]]

    assert listed("email:eve@x.com") == ["e4", "e3", "e2", "e1"], "the person's events, newest first by time"
    assert listed("email:eve@x.com", "--only-identifier") == ["e3"]
    assert listed("anonymous_id:v-1", "--only-identifier") == ["e3", "e2", "e1"]
    profile_id = json_out(cdp("profile", "show", "user_id:eve", "--json", "--events", "0", *admin(server)))["profile"]
    assert listed(profile_id["id"], "--oldest-first") == ["e1", "e2", "e3", "e4"]

    first = cdp("events", "anonymous_id:v-1", "--only-identifier", "--oldest-first", "--limit", "2", *admin(server))
    assert first.returncode == 0, first.stderr
    assert "e1" in first.stdout and "e2" in first.stdout and "e3" not in first.stdout
    more = shlex.split(first.stderr.split("more: ", 1)[1])
    assert more[:3] == ["cdp", "events", "anonymous_id:v-1"]
    assert "--only-identifier" in more and "--oldest-first" in more
    second = json_out(cdp(*more[1:], "--json", *admin(server)))
    assert [event["messageId"] for event in second["events"]] == ["e3"] and second["next_cursor"] is None

    refused = cdp("events", profile_id["id"], "--only-identifier", *admin(server))
    assert refused.returncode == 2 and "--only-identifier needs a type:value identifier" in refused.stderr
    described = cdp("events", "--help")
    assert "by event time" in described.stdout and "not when the server received it" in described.stdout


def test_events_of_an_unknown_identifier_is_an_error(server: ServerProcess) -> None:
    result = cdp("events", "user_id:nobody", "--json", *admin(server))
    assert result.returncode == 1
    assert "no events for user_id:nobody" in result.stderr
    assert result.stdout == ""


# -- errors ----------------------------------------------------------------------------------


def test_wrong_credentials_and_an_unreachable_server_are_named(server: ServerProcess, tmp_path: Path) -> None:
    wrong_token = cdp("source", "list", "--target", server.target, "--token", "not-the-token")
    assert wrong_token.returncode == 1
    assert "invalid admin token" in wrong_token.stderr and "--token" in wrong_token.stderr

    no_token = cdp("events", "user_id:x", "--target", server.target)
    assert no_token.returncode == 1
    assert "an admin token is required" in no_token.stderr

    path = write_jsonl(tmp_path / "one.jsonl", ['{"type":"track","userId":"u","event":"E"}'])
    wrong_key = cdp("import", str(path), *ingest(server, "not-a-key"))
    assert wrong_key.returncode == 1
    assert "invalid write key" in wrong_key.stderr and "--write-key" in wrong_key.stderr

    nowhere = f"127.0.0.1:{free_port()}"
    for command in (
        ["events", "user_id:x", "--target", nowhere, "--token", server.admin_token],
        ["import", str(path), "--target", nowhere, "--write-key", server.write_key],
    ):
        result = cdp(*command)
        assert result.returncode == 1
        assert f"cannot reach the server at {nowhere}" in result.stderr
        assert "Traceback" not in result.stderr


# -- version ---------------------------------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = cdp("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"cdp (tributary-cdp) {importlib.metadata.version('tributary-cdp')}\n"


# -- serve -----------------------------------------------------------------------------------


def start_serve(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cdp_server", "serve", *args], env=cli_env(), stdout=out, stderr=subprocess.STDOUT
        )


def wait_serving(process: subprocess.Popen[bytes], target: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and process.poll() is None:
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
            except grpc.RpcError:
                time.sleep(0.05)
                continue
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
    pytest.fail(f"cdp serve did not serve on {target}; its output:\n{log.read_text()[-4000:]}")


def stop_serve(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    finally:
        process.kill()


def test_serve_takes_its_settings_from_a_config_file(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "tributary.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ngrpc_port = {port}\nhttp_port = 0\n'
        'admin_tokens = ["toml-token"]\ndev_write_key = "toml-key"\n'
    )
    log = tmp_path / "serve.log"
    process = start_serve(["--config", str(config)], log)
    try:
        wait_serving(process, f"127.0.0.1:{port}", log)
        listed = cdp("source", "list", "--json", "--target", f"127.0.0.1:{port}", "--token", "toml-token")
        assert listed.returncode == 0, listed.stderr
        assert [source["name"] for source in json_out(listed)] == ["development"]
    finally:
        assert stop_serve(process) == 0
    assert (tmp_path / "data").is_dir()


def test_unsafe_benchmark_mode_logs_a_warning(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    args = [
        "--data-dir",
        str(tmp_path / "data"),
        "--grpc-port",
        str(port),
        "--http-port",
        "0",
        "--unsafe-benchmark-mode",
    ]
    process = start_serve(args, log)
    try:
        wait_serving(process, f"127.0.0.1:{port}", log)
    finally:
        stop_serve(process)
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [entry["msg"] for entry in entries if entry["level"] == "warning"]
    assert any("unsafe" in message.lower() for message in warnings), log.read_text()


def test_a_busy_port_fails_with_one_line_and_creates_no_data_dir(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        result = cdp("serve", "--data-dir", str(data), "--grpc-port", str(port), "--http-port", "0")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: port 127.0.0.1:{port} is in use by another program: stop it, or choose another port (--grpc-port)"
    ]
    assert not data.exists()


def test_a_second_server_on_the_same_data_dir_refuses_to_start(server: ServerProcess) -> None:
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "cdp_server",
            "serve",
            "--data-dir",
            str(server.data_dir),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    assert "in use by another Tributary process" in second.stderr + second.stdout
    assert server.serving()


def test_profile_shows_the_merged_profile_with_traits_and_identifiers(server: ServerProcess, tmp_path: Path) -> None:
    lines = [
        '{"type":"identify","anonymousId":"anon-7","traits":{"plan":"free"},"messageId":"q1",'
        '"timestamp":"2026-01-01T00:00:00Z"}',
        '{"type":"identify","userId":"u7","traits":{"email":"Bo@X.com","plan":"pro"},"messageId":"q2",'
        '"timestamp":"2026-01-02T00:00:00Z"}',
        '{"type":"track","userId":"u7","anonymousId":"anon-7","event":"Logged In","messageId":"q3",'
        '"timestamp":"2026-01-03T00:00:00Z"}',
    ]
    assert cdp("import", str(write_jsonl(tmp_path / "p.jsonl", lines)), *ingest(server)).returncode == 0
    by_email = json_out(cdp("profile", "show", "email:bo@x.com", "--json", *admin(server)))
    anonymous_first = json_out(cdp("profile", "show", "anonymous_id:anon-7", "--json", "--events", "0", *admin(server)))
    profile = by_email["profile"]
    assert profile["id"] == anonymous_first["profile"]["id"], "one person, one profile"
    assert profile["id"].startswith("tp_") and profile["merges"] == 1
    assert profile["traits"] == {"plan": "pro", "email": "Bo@X.com"}
    assert {(i["type"], i["value"]) for i in profile["identifiers"]} == {
        ("anonymous_id", "anon-7"),
        ("user_id", "u7"),
        ("email", "bo@x.com"),
    }
    # The events of the whole profile, newest first, and the merge that joined its halves.
    assert [e["messageId"] for e in by_email["events"]] == ["q3", "q2", "q1"]
    assert [m["message_id"] for m in by_email["merges"]] == ["q3"]
    by_id = json_out(
        cdp("profile", "show", profile["id"], "--json", "--trait", "plan", "--events", "2", *admin(server))
    )
    assert by_id["profile"]["traits"] == {"plan": "pro"}
    assert [e["messageId"] for e in by_id["events"]] == ["q3", "q2"]
    table = cdp("profile", "show", "user_id:u7", *admin(server))
    assert table.returncode == 0 and profile["id"] in table.stdout and "Bo@X.com" in table.stdout
    assert "merges" in table.stdout and "recent events" in table.stdout
    missing = cdp("profile", "show", "user_id:nobody", *admin(server))
    assert missing.returncode == 1 and "no profile for user_id:nobody" in missing.stderr
    why = json_out(cdp("profile", "why", "anonymous_id:anon-7", "email:bo@x.com", "--json", *admin(server)))
    assert why["linked"] is True
    assert [step["kind"] for step in why["steps"]] == ["KIND_JOINED", "KIND_JOINED", "KIND_MERGED"]
    told = cdp("profile", "why", "anonymous_id:anon-7", "user_id:u7", *admin(server))
    assert told.returncode == 0 and "are in one profile" in told.stdout and "merged into" in told.stdout


def test_profile_is_a_group_of_commands_each_with_its_own_help() -> None:
    group = cdp("profile", "--help")
    assert group.returncode == 0, group.stderr
    commands = {line.split()[0] for line in group.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert commands == {"show", "why", "split", "remove"}
    usages = {"show": "IDENTIFIER", "why": "A B", "split": "PROFILE A B", "remove": "PROFILE IDENTIFIER"}
    for name, arguments in usages.items():
        described = cdp("profile", name, "--help")
        assert described.returncode == 0, described.stderr
        assert f"Usage: cdp profile {name} [OPTIONS] {arguments}" in described.stdout
    old_form = cdp("profile", "user_id:x")
    assert old_form.returncode == 2 and "No such command 'user_id:x'" in old_form.stderr


def test_profile_split_and_remove_undo_wrong_merges(server: ServerProcess, tmp_path: Path) -> None:
    lines = [
        '{"type":"identify","userId":"ann","anonymousId":"kiosk","traits":{"email":"ann@x.com"},"messageId":"k1",'
        '"timestamp":"2026-02-01T00:00:00Z"}',
        '{"type":"track","anonymousId":"kiosk","event":"Viewed","messageId":"k2","timestamp":"2026-02-02T00:00:00Z"}',
        '{"type":"identify","anonymousId":"kiosk","traits":{"email":"bob@x.com"},"messageId":"k3",'
        '"timestamp":"2026-02-03T00:00:00Z"}',
    ]
    assert cdp("import", str(write_jsonl(tmp_path / "k.jsonl", lines)), *ingest(server)).returncode == 0
    before = json_out(cdp("profile", "show", "user_id:ann", "--json", "--events", "0", *admin(server)))["profile"]
    assert {i["value"] for i in before["identifiers"]} == {"ann", "kiosk", "ann@x.com", "bob@x.com"}
    split = json_out(
        cdp("profile", "split", before["id"], "email:ann@x.com", "email:bob@x.com", "--json", "--yes", *admin(server))
    )
    assert split["profile_a"] and split["profile_b"] and split["profile_a"] != split["profile_b"]
    removed = cdp("profile", "remove", "user_id:ann", "anonymous_id:kiosk", "--yes", *admin(server))
    assert removed.returncode == 0 and "anonymous_id:kiosk is in tp_" in removed.stdout, removed.stderr
    ann = json_out(cdp("profile", "show", "user_id:ann", "--json", "--events", "0", *admin(server)))["profile"]
    assert {i["value"] for i in ann["identifiers"]} == {"ann", "ann@x.com"}
    wrong = cdp("profile", "remove", "user_id:ann", "email:bob@x.com", "--yes", *admin(server))
    assert wrong.returncode == 1 and "is not in profile" in wrong.stderr
    usage = cdp("profile", "split", "user_id:ann", "email:ann@x.com", *admin(server))
    assert usage.returncode == 2 and "Usage: cdp profile split [OPTIONS] PROFILE A B" in usage.stderr
    assert "Missing argument 'B'" in usage.stderr


def test_identity_rules_show_and_set_with_a_dry_run(server: ServerProcess, tmp_path: Path) -> None:
    lines = [
        '{"type":"identify","userId":"u1","traits":{"email":"a@x.com"},"messageId":"r1","timestamp":"2026-03-01T00:00:00Z"}',
        '{"type":"identify","userId":"u1","traits":{"email":"b@x.com"},"messageId":"r2","timestamp":"2026-03-02T00:00:00Z"}',
        '{"type":"identify","anonymousId":"z","traits":{"email":"b@x.com"},"messageId":"r3",'
        '"timestamp":"2026-03-03T00:00:00Z"}',
    ]
    assert cdp("import", str(write_jsonl(tmp_path / "r.jsonl", lines)), *ingest(server)).returncode == 0
    defaults = cdp("identity", "rules", "show", *admin(server))
    assert defaults.returncode == 0 and "Segment's defaults" in defaults.stdout
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"type": "email", "limit": 1, "window": "weekly"}]}))
    dry = json_out(cdp("identity", "rules", "set", str(rules), "--dry-run", "--json", *admin(server)))
    assert dry["applied"] is False and dry["splits"] == "1" and dry["profiles_after"] == "2"
    assert json_out(cdp("identity", "rules", "show", "--json", *admin(server))) == {"rules": []}
    applied = cdp("identity", "rules", "set", str(rules), *admin(server))
    assert applied.returncode == 0 and "applied" in applied.stdout and "1 broken up" in applied.stdout
    shown = json_out(cdp("identity", "rules", "show", "--json", *admin(server)))
    assert shown == {"rules": [{"type": "email", "limit": 1, "window": "weekly"}]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"type": "email", "blocked_patterns": ["("]}]}))
    refused = cdp("identity", "rules", "set", str(bad), *admin(server))
    assert refused.returncode == 1 and "blocked pattern" in refused.stderr
