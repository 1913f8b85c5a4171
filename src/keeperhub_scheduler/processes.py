"""Process wiring: build the engine, transport and clients from settings, serve, run, shut down
cleanly.

The CLI calls these; tests and benchmarks start the same commands as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from keeperhub_scheduler.config import Settings
from keeperhub_scheduler.db.engine import create_engine, database_now
from keeperhub_scheduler.dispatcher import Dispatcher
from keeperhub_scheduler.errors import PortUnavailableError
from keeperhub_scheduler.executor.handle import DeliveryHandler, ExecutionPolicy
from keeperhub_scheduler.executor.worker import Executor
from keeperhub_scheduler.keeperhub.client import KeeperHubClient
from keeperhub_scheduler.telemetry.beats import BeatWriter
from keeperhub_scheduler.telemetry.health import health_app
from keeperhub_scheduler.transport import Transport, open_transport

log = logging.getLogger("keeperhub_scheduler")
GC_YOUNG_THRESHOLD = 10_000  # allocations between two collections of young objects (700 default)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (Kubernetes' stop, Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    return stop


def freeze_startup_heap() -> None:
    """Set aside what start-up built (botocore's service models, SQLAlchemy's tables, the
    libraries' modules): it lives as long as the process, and without this the garbage collector
    walks it again at every full collection (about 5% of a busy executor's CPU, measured).

    Then collect young objects less often: nearly all of a busy process's objects are freed by
    their reference counts, and a collection every 700 allocations (Python's default) cost the
    executor about 10 us a run finding the few that were not (211 collections in 5,000 runs,
    against one at 10,000)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD)


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside our own event loop: signals stay ours (we drain on SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    app: Starlette,
    host: str,
    port: int,
    stop: asyncio.Event,
    *,
    root_path: str = "",
    setting: str = "SCHEDULER_HEALTH_PORT",
) -> None:
    """Serve ``app`` until ``stop`` is set (port 0: do not serve at all); ``root_path`` is the
    prefix a proxy in front strips (Kubernetes ingress), so links the app makes carry it.
    ``setting`` names what chooses the port, for the one line a port already in use gives."""
    if port == 0:
        await stop.wait()
        return
    listening = bind(host, port, setting)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, root_path=root_path
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    await stop.wait()
    server.should_exit = True
    await task


def bind(host: str, port: int, setting: str) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn: a port already in use is then
    one line naming the port and the setting to change (uvicorn logs and exits from inside a
    task, which ends the process with a traceback)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise PortUnavailableError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): "
            f"another process uses it; set {setting} to a free port"
        ) from None
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


@contextlib.asynccontextmanager
async def opened(
    settings: Settings, *, pre_ping: bool = True, overflow: int | None = None
) -> AsyncIterator[tuple[AsyncEngine, Transport]]:
    engine = create_engine(
        settings.database,
        pool_size=settings.scheduler_db_pool_size,
        pre_ping=pre_ping,
        overflow=overflow,
    )
    transport = await open_transport(settings, engine)
    try:
        yield engine, transport
    finally:
        await transport.close()
        await engine.dispose()


def readiness(engine: AsyncEngine, transport: Transport):  # type: ignore[no-untyped-def]
    async def check() -> dict[str, str]:
        problems: dict[str, str] = {}
        try:
            async with engine.connect() as connection:
                await database_now(connection)
        except Exception as error:
            problems["database"] = type(error).__name__
        try:
            await transport.check()
        except Exception as error:
            problems["queue"] = type(error).__name__
        return problems

    return check


def opened_for_dispatcher(
    settings: Settings,
) -> contextlib.AbstractAsyncContextManager[tuple[AsyncEngine, Transport]]:
    """The dispatcher's engine and transport. No ping before each checkout: a pass's claim
    batches, relay marks and outbox reads would each pay a round trip for it (measured: 2-3% of
    the dispatcher's CPU at 1,000 due). A connection found dead fails its first statement, which
    runs once more on a fresh one (db/engine.py)."""
    return opened(settings, pre_ping=False)


async def run_dispatcher(settings: Settings, *, once: bool) -> int:
    async with opened_for_dispatcher(settings) as (engine, transport):
        dispatcher = Dispatcher(engine, transport, settings)
        beats = BeatWriter(engine, "dispatcher", dispatcher.heartbeat)
        if once:
            succeeded = await dispatcher.run_once()
            with contextlib.suppress(Exception):  # the status page's view; never the exit code
                await beats.write()
            return 0 if succeeded else 1
        stop = stop_on_signals()
        app = health_app(dispatcher.heartbeat, readiness(engine, transport), transport.depth)
        freeze_startup_heap()
        await asyncio.gather(
            dispatcher.run_forever(stop),
            beats.run(stop),
            serve(app, "0.0.0.0", settings.scheduler_health_port, stop),  # noqa: S104
        )
    return 0


def build_executor(
    settings: Settings, engine: AsyncEngine, transport: Transport
) -> tuple[Executor, KeeperHubClient]:
    key = settings.scheduler_service_api_key
    keeperhub = KeeperHubClient(
        settings.keeperhub_base_url,
        key.get_secret_value() if key else None,
        connect_timeout=settings.scheduler_http_connect_timeout_seconds,
        read_timeout=settings.scheduler_http_read_timeout_seconds,
        max_connections=settings.scheduler_executor_concurrency,
    )
    policy = ExecutionPolicy(
        signing_key=settings.signing_key_bytes,
        require_signature=settings.require_signature,
        accept_legacy=settings.scheduler_accept_legacy_messages,
        max_receive_count=settings.scheduler_max_receive_count,
        max_attempts=settings.scheduler_max_attempts,
        retry_base=settings.scheduler_retry_base_seconds,
        retry_max=settings.scheduler_retry_max_seconds,
        visibility_timeout=settings.scheduler_visibility_timeout_seconds,
        handoff_seconds=settings.scheduler_handoff_seconds,
        max_delay_seconds=transport.max_delay_seconds,
    )
    executor = Executor(
        transport,
        DeliveryHandler(engine, transport, keeperhub, policy),
        concurrency=settings.scheduler_executor_concurrency,
        receivers=settings.scheduler_receive_concurrency,
        wait_seconds=settings.scheduler_receive_wait_seconds,
        drain_seconds=settings.scheduler_drain_seconds,
        receive_visibility=policy.receive_seconds,
    )
    return executor, keeperhub


async def run_executor(settings: Settings) -> int:
    # Two one-statement checkouts per run (claim, record): a ping before each would be a third
    # of the executor's database round trips. A connection found dead fails one statement,
    # which the executor runs once more on a fresh one (db/engine.py). No overflow:
    # with more calls in flight than connections, overflow connections were opened and closed
    # (a PostgreSQL backend forked) every few runs; waiting a moment for a pooled one is cheaper.
    async with opened(settings, pre_ping=False, overflow=0) as (engine, transport):
        executor, keeperhub = build_executor(settings, engine, transport)
        stop = stop_on_signals()
        app = health_app(executor.heartbeat, readiness(engine, transport), transport.depth)
        freeze_startup_heap()
        try:
            await asyncio.gather(
                executor.run(stop),
                BeatWriter(engine, "executor", executor.heartbeat).run(stop),
                serve(app, "0.0.0.0", settings.scheduler_health_port, stop),  # noqa: S104
            )
        finally:
            await keeperhub.close()
    return 0


async def run_api(settings: Settings, host: str, port: int, root_path: str = "") -> int:
    """Serve the management API until SIGTERM or SIGINT, then exit cleanly (status 0).

    ``root_path``: the prefix a proxy serves it under and strips before passing requests on.
    """
    from keeperhub_scheduler.api import create_app

    stop = stop_on_signals()
    await serve(
        create_app(settings), host, port, stop, root_path=root_path,
        setting="SCHEDULER_API_PORT (or --port)",
    )  # fmt: skip
    return 0
