"""Reading JSON-lines and JSON-array files of Segment messages, lazily and with line numbers."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from tributary import EventFileError, event_files, read_events_file


@pytest.fixture(params=[1 << 16, 7], ids=["one-chunk", "tiny-chunks"])
def chunk_chars(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Tiny chunks cut elements, numbers and line breaks at every possible place."""
    monkeypatch.setattr(event_files, "_CHUNK_CHARS", request.param)
    return int(request.param)


def read(text: str) -> list[tuple[int, dict[str, object]]]:
    return list(read_events_file(io.StringIO(text)))


def test_json_lines_with_blank_lines_keep_their_line_numbers(chunk_chars: int) -> None:
    text = '{"type":"track","n":1}\n\n  {"type":"identify","n":2}\n\n{"n":3}'
    assert read(text) == [(1, {"type": "track", "n": 1}), (3, {"type": "identify", "n": 2}), (5, {"n": 3})]


def test_json_array_elements_carry_the_line_they_start_on(chunk_chars: int) -> None:
    text = '\n  [\n  {"n": 1},\n  {"n": 22,\n   "s": "a\\nb"}, {"n": 12345678901234567890}\n]\n'
    assert read(text) == [(3, {"n": 1}), (4, {"n": 22, "s": "a\nb"}), (5, {"n": 12345678901234567890})]


@pytest.mark.parametrize("text", ["", "  \n", "[]", " [ \n ] \n"])
def test_empty_inputs_yield_nothing(text: str, chunk_chars: int) -> None:
    assert read(text) == []


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('{"n":1}\n{"n":\n', 2, "not valid JSON"),
        ('{"n":1}\n[1]\n', 2, "expected a JSON object"),
        ('[{"n":1},\n{"n":2}\n', 3, "not closed"),
        ('[{"n":1}\n,\n]', 3, "not valid JSON"),
        ('[{"n":1} {"n":2}]', 1, "expected ',' or ']'"),
        ('[{"n":1},\n"x"]', 2, "expected a JSON object"),
        ('[{"n":1}]\n\n{"n":2}', 3, "after the JSON array"),
        ('[\n{"n":1},\n{"n": tru}]', 3, "not valid JSON"),
    ],
)
def test_malformed_input_names_the_line(text: str, line: int, reason: str, chunk_chars: int) -> None:
    with pytest.raises(EventFileError, match=reason) as raised:
        read(text)
    assert raised.value.line == line


def test_elements_before_an_error_are_yielded(chunk_chars: int) -> None:
    reader = read_events_file(io.StringIO('[{"n":1},{"n":2},oops]'))
    assert [next(reader), next(reader)] == [(1, {"n": 1}), (1, {"n": 2})]
    with pytest.raises(EventFileError):
        next(reader)


def test_paths_gzip_and_byte_order_mark(tmp_path: Path) -> None:
    lines = "\n".join(json.dumps({"type": "track", "n": n}) for n in range(3))
    plain = tmp_path / "events.jsonl"
    plain.write_text("\ufeff" + lines, encoding="utf-8")
    packed = tmp_path / "events.json.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as file:
        file.write("[" + lines.replace("\n", ",\n") + "]")
    expected = [(n + 1, {"type": "track", "n": n}) for n in range(3)]
    assert list(read_events_file(plain)) == expected
    assert list(read_events_file(str(packed))) == expected


class _CountingReader(io.StringIO):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.chars_read = 0

    def read(self, size: int | None = -1) -> str:
        chunk = super().read(size)
        self.chars_read += len(chunk)
        return chunk


@pytest.mark.parametrize("array", [False, True])
def test_reading_is_lazy(array: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_files, "_CHUNK_CHARS", 1024)
    items = [json.dumps({"type": "track", "n": n}) for n in range(100_000)]
    text = "[" + ",\n".join(items) + "]" if array else "\n".join(items)
    source = _CountingReader(text)
    reader = read_events_file(source)
    assert next(reader)[1] == {"type": "track", "n": 0}
    if array:  # line iteration reads through TextIOWrapper buffers, not read(); only arrays are checked here
        assert source.chars_read < 10_000 < len(text)
    assert sum(1 for _ in reader) == 99_999
