"""Settings precedence (defaults < TOML < environment < flags) and errors that name the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp_server import config


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRIBUTARY_CONFIG", "TRIBUTARY_ADMIN_TOKEN", "TRIBUTARY_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    assert settings.data_dir == Path("./data")
    assert (settings.host, settings.grpc_port, settings.http_port) == ("127.0.0.1", 50051, 8088)
    assert settings.unsafe_benchmark_mode is False
    assert settings.admin_tokens == ()
    assert settings.dedupe_window_secs == 7 * 24 * 3600


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tributary.toml"
    path.write_text('grpc_port = 6000\nhttp_port = 6001\nmax_streams = 7\nadmin_tokens = ["a"]\n')
    monkeypatch.setenv("TRIBUTARY_CONFIG", str(path))
    monkeypatch.setenv("TRIBUTARY_HTTP_PORT", "7001")
    monkeypatch.setenv("TRIBUTARY_ADMIN_TOKEN", "b")
    monkeypatch.setenv("TRIBUTARY_UNSAFE_BENCHMARK_MODE", "yes")
    settings = config.load(grpc_port=None, max_streams=9)
    assert (settings.grpc_port, settings.http_port, settings.max_streams) == (6000, 7001, 9)
    assert settings.admin_tokens == ("a", "b")
    assert settings.unsafe_benchmark_mode is True


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("grpc_port = 70000", "grpc_port"),
        ("max_streams = 'many'", "max_streams"),
        ("colour = 'blue'", "unknown setting 'colour'"),
        ("grpc_port = ", "config file"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, toml: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(config.ConfigError, match=needle):
        config.load(path)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_UNSAFE_BENCHMARK_MODE", "maybe")
    with pytest.raises(config.ConfigError, match="unsafe_benchmark_mode"):
        config.load()
