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
    unsafe_benchmark_mode: bool | None,
) -> None:
    """Serve Tributary (gRPC) on the embedded LMDB store until SIGTERM or Ctrl-C.

    Settings come from the TOML file, then TRIBUTARY_<SETTING> environment variables, then
    these flags. Logs are JSON lines on stderr.
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
            unsafe_benchmark_mode=unsafe_benchmark_mode,
        )
    except config.ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    logs.configure(settings.log_level)
    try:
        app.serve(settings)
    except app.PortInUse as exc:
        fail(str(exc))
    # grpc raises RuntimeError when it cannot bind the port; the engine, when it cannot open the store.
    except (OSError, RuntimeError, _core.CoreError) as exc:
        fail(f"cannot serve: {exc}")
