"""`cdp serve`."""

from __future__ import annotations

from pathlib import Path

import click

from cdp_server import config, logs
from cdp_server.cli.common import fail


@click.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file of settings (env TRIBUTARY_CONFIG).",
)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory [./data].")
@click.option("--host", help="Listen address [127.0.0.1].")
@click.option("--grpc-port", type=int, help="gRPC port [50051].")
@click.option("--http-port", type=int, help="HTTP port [8088].")
@click.option("--log-format", type=click.Choice(["json", "text"]), help="Logs on stderr: JSON lines or text [json].")
@click.option("--log-requests", is_flag=True, default=None, help="Log one line per HTTP request (with its Request-Id).")
@click.option(
    "--unsafe-benchmark-mode",
    is_flag=True,
    default=None,
    help="Benchmarks only: commits without fsync (can lose acknowledged events).",
)
def serve(
    config_file: str | None,
    data_dir: Path | None,
    host: str | None,
    grpc_port: int | None,
    http_port: int | None,
    log_format: str | None,
    log_requests: bool | None,
    unsafe_benchmark_mode: bool | None,
) -> None:
    """Serve Tributary (gRPC) on the embedded LMDB store until SIGTERM or Ctrl-C.

    Settings come from the TOML file, then TRIBUTARY_<SETTING> environment variables, then
    these flags. Logs go to stderr, as JSON lines unless --log-format text.
    """
    # Imported here: the other commands do not need the engine and server modules.
    from cdp_server import _core
    from cdp_server.server import app

    try:
        settings = config.load(
            config_file,
            data_dir=data_dir,
            host=host,
            grpc_port=grpc_port,
            http_port=http_port,
            log_format=log_format,
            log_requests=log_requests,
            unsafe_benchmark_mode=unsafe_benchmark_mode,
        )
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    logs.configure(settings.log_level, settings.log_format)
    try:
        app.serve(settings)
    except (app.PortInUse, config.ConfigError) as exc:
        fail(str(exc))
    # grpc raises RuntimeError when it cannot bind the port; the engine, when it cannot open the store.
    except (OSError, RuntimeError, _core.CoreError) as exc:
        fail(f"cannot serve: {exc}")
