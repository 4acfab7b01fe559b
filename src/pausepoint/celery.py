"""Scale out on Celery: any worker starts or resumes any run, exactly once.

Needs ``pip install 'pausepoint[celery]'``. Where to start:

* **Workers** run ``pausepoint worker --broker URL --store URL --charts MODULE``
  (a Celery prefork worker; ``--beat`` embeds the sweeper's clock), or
  ``celery -A pausepoint.celery worker`` with the settings in the environment
  (see :meth:`CelerySettings.from_env`), or ``celery -A yourmodule worker`` for
  an app of your own built with :func:`make_celery_app`.
* **The web process** hands work to them with :class:`CeleryDispatcher`::

      from pausepoint.celery import CeleryDispatcher, make_celery_app

      app = make_celery_app("redis://127.0.0.1:6379/1", store_url, "myapp.charts")
      dispatcher = CeleryDispatcher(app, runs=runs)   # runs: optional pre-check
      task_id = await dispatcher.resume(run_id, {"approved": True}, actor="kim",
                                        pause_id=pause_id)
      # returns once the task is queued: the run is "resuming"; read the
      # outcome later with runs.get(run_id)

The tasks, all JSON (serializer and accepted content), each returning
``{"run_id": ..., "status": ...}`` and never a pickled object:

``pausepoint.start(chart, input=None, run_id=None, actor=None)``
    :meth:`Runs.start <pausepoint.durable.runs.Runs.start>`; without ``run_id`` the task
    id becomes the run id, so a redelivered message never starts a second run.
``pausepoint.resume(run_id, input, actor=None, pause_id=None, idempotency_key=None, stage_id=None, groups=None)``
    :meth:`Runs.resume <pausepoint.durable.runs.Runs.resume>`.
``pausepoint.sweep()``
    :meth:`Runs.sweep <pausepoint.durable.runs.Runs.sweep>`: deadlines, recovery and
    retention (``CelerySettings.retention``), returning
    ``{"expired": [...], "recovered": [...], "purged": n}``; celery beat sends it
    every ``sweep_every`` seconds. Several sweepers at once are safe: every step
    is compare-and-set based or one atomic batch of the store.

What is guaranteed, and by whom:

* **Exactly-once resume comes from the store, not the broker.** Celery delivers a
  task at least once; a copy that finds its run already claimed, finished or
  answered ends quietly (logged at INFO, returning the run's current status) and
  is not retried. Two copies carrying the same ``idempotency_key`` both report
  the first one's outcome.
* **Late acknowledgement, prefetch of one, reject on worker lost.** A message is
  acknowledged only when its task returns, a process reserves one message at a
  time, and a task whose process died is handed to another worker.
* **A dead worker's run is finished elsewhere.** While a run goes on, each
  finished stage appends a journal entry, and a thread renews its lease; once
  the lease lapses (the worker died or lost the store), the next sweep (on any
  worker) takes it over and goes on from the last finished stage. Only the
  stage in flight at the crash can run twice.
* **A store that is down is retried**, with exponential backoff and jitter, up
  to ``max_retries`` times (``StoreUnavailableError``); other errors (an
  unknown run, a refused answer) fail the task at once.

Each worker process keeps one :class:`~pausepoint.durable.runs.Runs` and one event loop
(an :class:`asyncio.Runner`) for its whole life, created on its first task, so
store connections are pooled across tasks. Use the ``prefork`` pool (the
default), ``threads`` (one ``Runs`` per thread) or ``solo``; not gevent/eventlet.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import os
import threading
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

try:
    from celery import Celery  # type: ignore[import-untyped]  # celery ships no type hints
    from celery import signals as _signals
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"pausepoint.celery needs the {error.name!r} package: pip install 'pausepoint[celery]'"
    ) from error

from pausepoint.durable._lifecycle import parse_retention
from pausepoint.durable._notify import NotifySettings
from pausepoint.durable._observe import trace_context, trace_headers
from pausepoint.durable._seal import keys_from_env
from pausepoint.durable.answer import Answer
from pausepoint.durable.runs import Retention, RunRecord, Runs
from pausepoint.engine._loading import CHARTS_ENV, STORE_ENV, default_store_url, load_charts
from pausepoint.engine.chart import FlowChart
from pausepoint.engine.executor import validate_run_input
from pausepoint.errors import (
    ClaimLostError,
    RunAlreadyClaimedError,
    RunExistsError,
    RunNotPausedError,
    StalePauseError,
    StoreUnavailableError,
)
from pausepoint.stores import open_store

__all__ = [
    "BROKER_ENV",
    "QUEUE_ENV",
    "CeleryDispatcher",
    "CelerySettings",
    "TaskResult",
    "install_tasks",
    "make_celery_app",
]

log = logging.getLogger("pausepoint.celery")

T = TypeVar("T")

BROKER_ENV = "PAUSEPOINT_BROKER"
QUEUE_ENV = "PAUSEPOINT_QUEUE"
RESULT_BACKEND_ENV = "PAUSEPOINT_RESULT_BACKEND"
LEASE_ENV = "PAUSEPOINT_LEASE"
SWEEP_EVERY_ENV = "PAUSEPOINT_SWEEP_EVERY"
SIGNING_KEY_ENV = "PAUSEPOINT_SIGNING_KEY"
NOTIFY_ENV = "PAUSEPOINT_NOTIFY"
NOTIFY_SECRET_ENV = "PAUSEPOINT_NOTIFY_SECRET"
BASE_URL_ENV = "PAUSEPOINT_BASE_URL"

DEFAULT_CHARTS = "pausepoint.demo"
"""The charts used when none are named, as by the ``pausepoint`` command."""

START_TASK = "pausepoint.start"
RESUME_TASK = "pausepoint.resume"
SWEEP_TASK = "pausepoint.sweep"

TaskResult = dict[str, str]
"""What the start and resume tasks return: ``{"run_id": ..., "status": ...}``."""


@dataclass(frozen=True, kw_only=True)
class CelerySettings:
    """Everything a worker (or a sender) needs to know.

    Attributes:
        broker_url: Celery broker, e.g. ``redis://host:6379/1`` or ``amqp://user:pw@host//``.
        store_url: The store every worker and the web process share (Postgres or Redis
            across machines; a SQLite file only on one machine).
        charts: A charts module (``module``, ``module:attribute``, several joined by
            commas), loaded in the worker, or the charts themselves.
        queue: The queue pausepoint's tasks go to and workers consume.
        result_backend: Where task results go (``{"run_id", "status"}``); ``None``
            keeps none: the store is where outcomes live.
        lease_seconds: How long a claimed run stays claimed once its worker stops
            renewing it; a dead worker's run is taken over this long after its
            last renewal (a live worker renews every third of it).
        sweep_every: Seconds between two sweeps (deadlines, recovery) sent by beat.
        max_retries: How often a task is retried while the store is unreachable.
        retry_backoff_max: Longest wait between two of those retries, in seconds.
        signing_key: The checkpoint signing key, as given to ``Runs``.
        encryption_key: The encryption keys, newest first, as given to ``Runs``.
        broker_options: Celery's ``broker_transport_options`` (e.g. Redis's
            ``visibility_timeout`` or ``global_keyprefix``).
        retention: How long finished runs are kept, as ``Runs(retention=...)``;
            applied by the sweep.
        notify: Notification URLs told of every pause, as ``Runs(notify=...)``;
            the sweep delivers them.
        notify_secret: Signs webhook requests, as ``Runs(notify_secret=...)``.
        base_url: Makes the run page's link absolute, as ``Runs(base_url=...)``.
    """

    broker_url: str
    store_url: str
    charts: str | Mapping[str, FlowChart] = DEFAULT_CHARTS
    queue: str = "pausepoint"
    result_backend: str | None = None
    lease_seconds: float = 30.0
    sweep_every: float = 10.0
    max_retries: int = 10
    retry_backoff_max: int = 60
    signing_key: str | None = None
    encryption_key: Sequence[str] | None = None
    broker_options: Mapping[str, Any] = field(default_factory=dict)
    retention: Retention | None = None
    notify: tuple[str, ...] = ()
    notify_secret: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        if not self.broker_url:
            raise ValueError(f"no broker URL: pass broker_url or set {BROKER_ENV}")
        if self.lease_seconds <= 0 or self.sweep_every <= 0:
            raise ValueError("lease_seconds and sweep_every must be positive")
        parse_retention(self.retention)  # refuse a bad policy here, not in every worker
        NotifySettings.of(self.notify, self.notify_secret, self.base_url, 1, 1.0)  # and bad URLs

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> CelerySettings:
        """Read the settings from the environment; keyword arguments win.

        ``PAUSEPOINT_BROKER`` (required), ``PAUSEPOINT_STORE`` (default: the SQLite
        file ``pausepoint.db``), ``PAUSEPOINT_CHARTS`` (default: the demo's charts),
        ``PAUSEPOINT_QUEUE``, ``PAUSEPOINT_RESULT_BACKEND``, ``PAUSEPOINT_LEASE``
        (seconds), ``PAUSEPOINT_SWEEP_EVERY`` (seconds), ``PAUSEPOINT_SIGNING_KEY``,
        ``PAUSEPOINT_ENCRYPTION_KEYS`` (Fernet keys, newest first, separated by commas),
        ``PAUSEPOINT_NOTIFY`` (URLs separated by spaces), ``PAUSEPOINT_NOTIFY_SECRET``,
        ``PAUSEPOINT_BASE_URL``.

        Raises:
            ValueError: No broker is named, or a number does not parse.
        """
        env = os.environ if environ is None else environ
        found: dict[str, Any] = {
            "broker_url": env.get(BROKER_ENV, ""),
            "store_url": env.get(STORE_ENV) or default_store_url(),
            "charts": env.get(CHARTS_ENV) or DEFAULT_CHARTS,
            "encryption_key": keys_from_env(env),
        }
        optional: dict[str, tuple[str, Callable[[str], Any]]] = {
            "queue": (QUEUE_ENV, str),
            "result_backend": (RESULT_BACKEND_ENV, str),
            "lease_seconds": (LEASE_ENV, float),
            "sweep_every": (SWEEP_EVERY_ENV, float),
            "signing_key": (SIGNING_KEY_ENV, str),
            "notify": (NOTIFY_ENV, lambda text: tuple(text.split())),
            "notify_secret": (NOTIFY_SECRET_ENV, str),
            "base_url": (BASE_URL_ENV, str),
        }
        for name, (variable, parse) in optional.items():
            if env.get(variable):
                try:
                    found[name] = parse(env[variable])
                except ValueError:
                    raise ValueError(f"{variable}={env[variable]!r} is not a number") from None
        found.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**found)


def make_celery_app(
    broker_url: str | None = None,
    store_url: str | None = None,
    charts: str | Mapping[str, FlowChart] | None = None,
    *,
    settings: CelerySettings | None = None,
    name: str = "pausepoint",
    **options: Any,
) -> Celery:
    """Return a Celery app running pausepoint's tasks, configured for reliability.

    Arguments left out come from the environment (:meth:`CelerySettings.from_env`);
    ``options`` are further :class:`CelerySettings` fields (``queue``,
    ``lease_seconds``, ``sweep_every``, ...). Alternatively pass ``settings``.

    The app serializes JSON only, acknowledges late with a prefetch of one,
    requeues a task whose worker process died, sends pausepoint's tasks to
    ``settings.queue`` and schedules ``pausepoint.sweep`` for celery beat. Further
    Celery settings go to ``app.conf`` as usual. To add the tasks to an app of
    your own instead, use :func:`install_tasks`.

    Raises:
        ValueError: No broker is named.
    """
    if settings is None:
        settings = CelerySettings.from_env(
            broker_url=broker_url, store_url=store_url, charts=charts, **options
        )
    elif broker_url or store_url or charts or options:
        raise TypeError("pass either settings= or the individual settings, not both")
    app = Celery(name, broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_default_queue=settings.queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=settings.result_backend is None,
        broker_connection_retry_on_startup=True,
        # A resume in flight when the broker connection drops goes on: the copy
        # redelivered meanwhile finds the run claimed and ends quietly, whereas
        # cancelling it (Celery 6's announced default) would run its stage twice.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options=dict(settings.broker_options),
        # Sweeps are sent at a fixed interval and any number may overlap: an
        # in-memory schedule needs no celerybeat-schedule file beside the worker.
        beat_scheduler="celery.beat:Scheduler",
    )
    install_tasks(app, settings)
    return app


def install_tasks(app: Celery, settings: CelerySettings) -> None:
    """Register pausepoint's tasks, their route and the sweep schedule on ``app``.

    The reliability options are set on the tasks themselves (late
    acknowledgement, reject on worker lost, JSON, retries while the store is
    down); set ``worker_prefetch_multiplier = 1`` and ``accept_content = ["json"]``
    on your app as :func:`make_celery_app` does.
    """
    engine = _Engine(app, settings)
    options: dict[str, Any] = {
        "bind": True,
        "shared": False,
        "serializer": "json",
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (StoreUnavailableError,),
        "retry_backoff": True,
        "retry_backoff_max": settings.retry_backoff_max,
        "retry_jitter": True,
        "max_retries": settings.max_retries,
    }

    @app.task(name=START_TASK, **options)  # type: ignore[untyped-decorator]  # celery is untyped
    def start(
        task: Any,
        chart: str,
        input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        actor: str | None = None,
    ) -> TaskResult:
        # the task id: a redelivered copy of this message starts nothing new
        run_id = run_id or task.request.id or os.urandom(16).hex()
        with _traced(task):
            return engine.call(lambda runs: _start(runs, chart, input, run_id, actor))

    @app.task(name=RESUME_TASK, **options)  # type: ignore[untyped-decorator]  # idem
    def resume(
        task: Any,
        run_id: str,
        input: Any,
        actor: str | None = None,
        pause_id: str | None = None,
        idempotency_key: str | None = None,
        stage_id: str | None = None,
        groups: list[str] | None = None,
    ) -> TaskResult:
        # the message's fields are Answer.to_json's, so workers and dispatchers of
        # releases before Answer read each other's messages
        answer = Answer.from_json(
            {
                "input": input,
                "actor": actor,
                "pause_id": pause_id,
                "idempotency_key": idempotency_key,
                "stage_id": stage_id,
                "groups": groups,
            }
        )
        with _traced(task):
            return engine.call(lambda runs: _resume(runs, run_id, answer))

    @app.task(  # type: ignore[untyped-decorator]  # idem
        name=SWEEP_TASK,
        bind=True,
        shared=False,
        serializer="json",
        # A lost sweep is harmless (the next one comes), and one that ran long
        # must not come back: acknowledge early, never retry.
        acks_late=False,
        ignore_result=True,
    )
    def sweep(task: Any) -> dict[str, Any]:
        return engine.call(_sweep)

    app.conf.task_routes = {
        **_as_dict(app.conf.task_routes),
        "pausepoint.*": {"queue": settings.queue},
    }
    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        "pausepoint-sweep": {
            "task": SWEEP_TASK,
            "schedule": settings.sweep_every,
            # sweeps that waited behind a backlog longer than one interval are dropped
            "options": {"queue": settings.queue, "expires": settings.sweep_every},
        },
    }
    _ENGINES.add(engine)


def _traced(task: Any) -> AbstractContextManager[None]:
    """Run a task under the trace context its sender put in its headers, if any."""
    return trace_context({key: task.request.get(key) for key in ("traceparent", "tracestate")})


def _as_dict(routes: Any) -> dict[str, Any]:
    if isinstance(routes, Mapping):
        return dict(routes)
    if routes:
        raise ValueError("install_tasks needs app.conf.task_routes to be a dict (or unset)")
    return {}


# -- the tasks' bodies -------------------------------------------------------------


def _result(record: RunRecord) -> TaskResult:
    return {"run_id": record.run_id, "status": record.status}


async def _start(
    runs: Runs, chart: str, input: Mapping[str, Any] | None, run_id: str, actor: str | None
) -> TaskResult:
    try:
        return _result(await runs.start(chart, input, run_id=run_id, actor=actor))
    except RunExistsError:
        # A redelivered copy: the first one started the run (recover() finishes
        # it if that worker died on the way).
        status = (await runs.store.get(run_id)).status
        log.info("run %s already started (now %s): start not repeated", run_id, status)
        return {"run_id": run_id, "status": status}


async def _resume(runs: Runs, run_id: str, answer: Answer) -> TaskResult:
    try:
        record = await runs.answer(run_id, answer)
    except ClaimLostError as exc:
        # This worker claimed the run, then lost it (stopped or cut off past its
        # lease): another worker finishes it. Not a duplicate: an operator should see it.
        status = (await runs.store.get(run_id)).status
        log.warning("run %s: claim lost while resuming, left to its new holder: %s", run_id, exc)
        return {"run_id": run_id, "status": status}
    except (RunAlreadyClaimedError, StalePauseError, RunNotPausedError) as exc:
        # Another copy of this task (or another answer) got there first: that is
        # the claim doing its job, not a failure, and retrying cannot change it.
        status = (await runs.store.get(run_id)).status
        log.info("run %s: resume not applied (%s): %s", run_id, type(exc).__name__, exc)
        return {"run_id": run_id, "status": status}
    return _result(record)


async def _sweep(runs: Runs) -> dict[str, Any]:
    report = await runs.sweep()
    return {
        "expired": report.expired,
        "recovered": report.recovered,
        "purged": report.purged,
        "escalated": report.escalated,
        "reminded": report.reminded,
        "notified": report.notified,
        "notify_retrying": report.notify_retrying,
        "notify_failed": report.notify_failed,
    }


# -- one Runs and one event loop per worker process -----------------------------------


class _Engine:
    """Drives the async ``Runs`` from Celery's synchronous tasks.

    Each process (each thread, for the threads pool) gets its own event loop and
    its own ``Runs`` on the first task, and keeps them: store connections are
    pooled across tasks instead of being opened by every task. A process forked
    from one that already had them (prefork) starts afresh, so no two processes
    share a connection or a lease owner.
    """

    def __init__(self, app: Celery, settings: CelerySettings) -> None:
        self.app = app
        self.settings = settings
        self._charts: dict[str, FlowChart] | None = (
            None if isinstance(settings.charts, str) else dict(settings.charts)
        )
        self._local = threading.local()
        self._lock = threading.Lock()

    def charts(self) -> dict[str, FlowChart]:
        """Import the charts once per process (the worker's parent, before forking)."""
        with self._lock:
            if self._charts is None:
                spec = self.settings.charts
                assert isinstance(spec, str)
                charts: dict[str, FlowChart] = {}
                for part in spec.split(","):
                    if part.strip():
                        charts.update(load_charts(part.strip()))
                self._charts = charts
            return self._charts

    def runs(self) -> Runs:
        """This process's (thread's) ``Runs``, created on first use."""
        return self._state()[1]

    def call(self, work: Callable[[Runs], Awaitable[T]]) -> T:
        """Run ``work(runs)`` to completion on this process's event loop."""
        runner, runs = self._state()
        # in the caller's context (e.g. the task's trace), not the one the runner kept from its first call
        return runner.run(_awaitable(work(runs)), context=contextvars.copy_context())

    def _state(self) -> tuple[asyncio.Runner, Runs]:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            # Fresh thread, or a child forked from a process that had its own:
            # the inherited loop and connections belong to the parent.
            local.pid = os.getpid()
            local.runner = asyncio.Runner()
            settings = self.settings
            local.runs = Runs(
                open_store(settings.store_url),
                self.charts(),
                lease_seconds=settings.lease_seconds,
                signing_key=settings.signing_key,
                encryption_key=settings.encryption_key,
                retention=settings.retention,
                notify=settings.notify,
                notify_secret=settings.notify_secret,
                base_url=settings.base_url,
            )
        return local.runner, local.runs

    def close(self) -> None:
        """Close this process's ``Runs`` and loop, if it has them."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            return
        runner: asyncio.Runner = local.runner
        runs: Runs = local.runs
        del local.pid, local.runner, local.runs
        try:
            runner.run(runs.aclose())
        except Exception:  # a store that is down must not stop the process from exiting
            log.warning("closing the store failed", exc_info=True)
        finally:
            runner.close()


async def _awaitable(work: Awaitable[T]) -> T:
    return await work


_ENGINES: weakref.WeakSet[_Engine] = weakref.WeakSet()


def _on_worker_init(sender: Any = None, **_: Any) -> None:
    # Import the charts in the worker's main process, before the pool forks:
    # a bad --charts stops the worker at once, and children inherit the modules.
    for engine in list(_ENGINES):
        if engine.app is getattr(sender, "app", None):
            engine.charts()
    # What the pool inherits lives as long as it does: keep it out of the
    # collector's full passes, which would stall a task (tens of ms on a small
    # machine) and copy the inherited pages into every pool process.
    gc.collect()
    gc.freeze()


def _on_process_shutdown(**_: Any) -> None:
    for engine in list(_ENGINES):
        engine.close()


_signals.worker_init.connect(_on_worker_init, weak=False)
_signals.worker_process_shutdown.connect(_on_process_shutdown, weak=False)


# -- the web process's side ----------------------------------------------------------


class CeleryDispatcher:
    """Hands starts and resumes to Celery workers and returns at once.

    Args:
        app: An app from :func:`make_celery_app` (or one given :func:`install_tasks`).
        runs: Optional. When given, :meth:`start` checks the chart name and input,
            and :meth:`resume` checks the answer against the stored run (unknown
            run, not paused, stale pause, input failing the stage's schema) before
            sending, so the caller gets the errors ``Runs.start``/``Runs.resume``
            raise, synchronously; refused answers are audited as ``Runs.resume``
            audits them. The claim in the worker stays the authority.

    Sending blocks on the broker for a moment, so it runs in a worker thread.
    """

    def __init__(self, app: Celery, *, runs: Runs | None = None) -> None:
        self.app = app
        self.runs = runs

    async def start(
        self,
        chart: str,
        input: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        *,
        actor: str | None = None,
    ) -> str:
        """Queue a start of ``chart``; return the run's id (made here when not given).

        Raises:
            RunError, RunInputError: Only with ``runs`` given: no chart has that
                name, or ``input`` fails the chart's input model; nothing was sent.
        """
        if self.runs is not None:
            validate_run_input(self.runs._chart(chart), input or {})  # same checks as Runs.start
        run_id = run_id or os.urandom(16).hex()
        kwargs = {"chart": chart, "input": dict(input or {}), "run_id": run_id, "actor": actor}
        await asyncio.to_thread(self._send, START_TASK, kwargs)
        return run_id

    async def resume(
        self,
        run_id: str,
        input: Any,
        *,
        actor: str | None = None,
        groups: Collection[str] | None = None,
        pause_id: str | None = None,
        stage_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue a resume; return the Celery task id. The run is then "resuming".

        The keyword form of :meth:`answer`.
        """
        return await self.answer(
            run_id,
            Answer(
                input=input,
                actor=actor,
                groups=groups,
                pause_id=pause_id,
                stage_id=stage_id,
                idempotency_key=idempotency_key,
            ),
        )

    async def answer(self, run_id: str, answer: Answer) -> str:
        """Queue an answer; return the Celery task id. The run is then "resuming".

        The outcome is read from the store later (``runs.get(run_id)``); a copy
        delivered twice still resumes the run once. ``answer.actor`` and
        ``answer.groups`` are checked against the pause's assignees here and
        again by the worker.

        Raises:
            RunNotFoundError, RunAlreadyClaimedError, RunNotPausedError, StalePauseError,
            ResumeTargetError, ResumeInputError, ChartChangedError,
            PermissionDeniedError: Only with ``runs`` given: the pre-check refused
                the answer; nothing was sent.
        """
        if self.runs is not None:
            await self.runs.check_answer(run_id, answer)
        kwargs = {"run_id": run_id, **answer.to_json()}
        return await asyncio.to_thread(self._send, RESUME_TASK, kwargs)

    def _send(self, name: str, kwargs: dict[str, Any]) -> str:
        # the trace context of the request that sends the task: the run's spans continue it
        result = self.app.send_task(name, kwargs=kwargs, headers=trace_headers() or None)
        return str(result.id)


# -- ``celery -A pausepoint.celery``: an app from the environment ---------------------

_env_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """``pausepoint.celery.app``: built from the environment on first access."""
    global _env_app
    if name == "app":
        if _env_app is None:
            _env_app = make_celery_app()
        return _env_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
