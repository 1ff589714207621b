"""Pytest fixtures for destination tests: fault-injecting HTTP receivers on 127.0.0.1.

Not a conftest.py (the root conftest stays as it is): a test module loads these with
`pytest_plugins = ["sinks_conftest"]`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from webhook_sink import LOOPBACK, WebhookSink


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    """A started sink answering 200 until told otherwise; closed after the test."""
    with WebhookSink.start() as sink:
        yield sink


@pytest.fixture
def webhook_sinks() -> Iterator[Callable[..., WebhookSink]]:
    """Starts more sinks (e.g. a redirect's target, on another loopback address with
    `host="127.0.0.2"`); all are closed after the test."""
    started: list[WebhookSink] = []

    def start(host: str = LOOPBACK) -> WebhookSink:
        started.append(WebhookSink.start(host=host))
        return started[-1]

    yield start
    for sink in started:
        sink.close()
