"""Fixtures of the Celery tests: a broker, a store and real worker processes per test.

There is deliberately no ``__init__.py`` in this directory: as a package it would
be importable as ``celery`` (``tests/`` is on ``sys.path`` under pytest) and
shadow the real library. Its modules have names of their own instead
(``celery_support``, ``celery_charts``, ``test_celery_*``).

Each test gets a unique queue (and, on Redis, a key prefix for everything the
broker keeps); each module a fresh store (a Redis key prefix or a PostgreSQL
schema), dropped at its end. Workers are stopped after every test, killed if
they do not stop, and no process of theirs is left running.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import celery_charts
import pytest
from celery_support import (
    POSTGRES_URL,
    RABBITMQ_URL,
    REDIS_URL,
    Broker,
    SideLog,
    StoreSpace,
    Worker,
    require_url,
)

from pausepoint import Runs, open_store


@pytest.fixture
def broker(broker_kind: str) -> Iterator[Broker]:
    require_url(REDIS_URL if broker_kind == "redis" else RABBITMQ_URL)
    made = Broker(broker_kind)
    yield made
    made.cleanup()


@pytest.fixture(scope="module")
def spaces() -> Iterator[dict[str, StoreSpace]]:
    made: dict[str, StoreSpace] = {}
    yield made
    for space in made.values():
        space.cleanup()


@pytest.fixture
def store_url(store_kind: str, spaces: dict[str, StoreSpace]) -> str:
    require_url(REDIS_URL if store_kind == "redis" else POSTGRES_URL)
    if store_kind not in spaces:
        spaces[store_kind] = StoreSpace(store_kind)
    return spaces[store_kind].url


@pytest.fixture
def side_log(tmp_path: Path) -> SideLog:
    return SideLog(tmp_path / "side-effects.log")


@pytest.fixture
def workers(broker: Broker, store_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Makes (not starts) workers on this test's broker and store; stops them all afterwards."""
    made: list[Worker] = []

    def make(name: str, *, store: str | None = None, **options: Any) -> Worker:
        worker = Worker(name, broker, store or store_url, tmp_path, **options)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.terminate()  # all at once: a warm shutdown takes seconds
    errors = []
    for worker in made:
        try:
            worker.stop()
        except Exception as exc:  # stop the others anyway
            errors.append(exc)
        print(f"--- {worker.name} ---\n{worker.tail(60)}")
    assert not errors, errors


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[Runs]:
    async with Runs(open_store(store_url), celery_charts.charts) as opened:
        yield opened


@pytest.fixture
def app(broker: Broker, store_url: str) -> Iterator[Any]:
    """The web process's Celery app: sends to this test's queue."""
    from pausepoint.celery import make_celery_app

    made = make_celery_app(
        broker.url, store_url, "celery_charts", queue=broker.queue, broker_options=broker.options
    )
    yield made
    made.close()
