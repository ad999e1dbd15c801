"""`reeltrace serve` (the API, with a worker unless `--no-worker`) and `reeltrace worker`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator

import structlog
import typer
import uvicorn
import uvloop
from prometheus_client import start_http_server
from sse_starlette.sse import AppStatus

from service.api.health import NO_TRACE_EXPORT
from service.app import create_app
from service.auth.keys import ensure_admin_key
from service.auth.repository import ApiKeyRepository
from service.cli.common import fail, out, run, settings_or_exit
from service.cli.http_client import DEFAULT_API_URL, api_url
from service.db.urls import redact
from service.gc_tuning import settle_heap
from service.runtime import Runtime
from service.wiring import Processing, assemble_api, assemble_worker
from telemetry.metrics import get_metrics
from telemetry.tracing import (
    configure_tracing,
    instrument_httpx,
    reaches_jaeger,
    shutdown_tracing,
)

log = structlog.get_logger("reeltrace.serve")

DEFAULT_WORKER_METRICS_PORT = 9100
GRACEFUL_SHUTDOWN_SECONDS = 10


class _Server(uvicorn.Server):
    """uvicorn, minus its signal capture.

    uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which ends the
    process before `serve` can stop its worker and the embedded PostgreSQL; here the
    command handles the signals itself and asks the server to exit.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # "listening" is said once the socket is bound, so a client that reads it
        # can connect at once.
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()


def _on_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, callback)


def listen_socket(host: str, port: int, setting: str = "REELTRACE_PORT") -> socket.socket:
    """The API's socket, bound before anything starts: a port in use is a one-line error,
    not a worker and a database started for nothing.

    Made from getaddrinfo's answer, so its protocol is TCP by number: asyncio sets
    TCP_NODELAY only on connections of a socket that says so, and without it Nagle's
    algorithm holds each response back ~40 ms for the client's delayed ACK.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (REELTRACE_HOST)") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise cannot_listen(host, port, exc, setting) from None
    return sock


def cannot_listen(host: str, port: int, exc: OSError, setting: str) -> typer.Exit:
    """The one-line error of a port that cannot be bound, naming the settings behind it."""
    return fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (REELTRACE_HOST / {setting})")


async def bootstrap_key_lines(runtime: Runtime) -> list[str]:
    """On the embedded default, the first start creates an admin key, shown once as the
    commands that put it to use (printed to stdout with "listening", never logged).
    """
    issued = await ensure_admin_key(ApiKeyRepository(runtime.database))
    if issued is None:
        return []
    lines = [
        f"Created admin API key {issued.record.prefix}; it is shown only now. In another shell:",
        f"  export REELTRACE_API_KEY={issued.key}",
    ]
    url = api_url(runtime.settings)
    if url != DEFAULT_API_URL:
        # The CLI calls the default address unless told: another one must be named.
        lines.append(f"  export REELTRACE_API_URL={url}")
    return lines


async def _wind_down(
    stop: asyncio.Event, tasks: list[asyncio.Task[None]], processing: Processing | None, runtime: Runtime
) -> None:
    """Stop the process's jobs and wait for them, then close its pipeline, its database
    (stopping the embedded PostgreSQL) and its tracing, in that order."""
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    if processing is not None:
        await processing.aclose()
    await runtime.close()
    shutdown_tracing()


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)


def serve(
    host: str | None = typer.Option(None, help="Interface to bind (REELTRACE_HOST)."),
    port: int | None = typer.Option(None, help="Port to bind (REELTRACE_PORT)."),
    with_worker: bool = typer.Option(True, "--worker/--no-worker", help="Also run a worker in this process."),
) -> None:
    """Start the service. Without DATABASE_URL, an embedded PostgreSQL is started and migrated."""
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit(**overrides)

    sock = listen_socket(settings.host, settings.port)
    configure_tracing("reeltrace" if with_worker else "reeltrace-api")
    instrument_httpx()
    if settings.jaeger_url and not reaches_jaeger():
        # Every response would carry a trace link to a trace Jaeger never receives.
        log.warning("traces_not_exported", jaeger_url=settings.jaeger_url, detail=NO_TRACE_EXPORT)

    async def body() -> None:
        # Signals are ours from the first moment, so that even a stop during start-up
        # shuts down cleanly (and stops the embedded PostgreSQL).
        stop = asyncio.Event()
        servers: list[_Server] = []

        def on_signal() -> None:
            if stop.is_set():
                # A second Ctrl-C: do not wait for open connections any longer.
                for server in servers:
                    server.force_exit = True
                return
            stop.set()
            # sse-starlette ends its streams on this flag; it cannot see a stop itself,
            # since uvicorn's signal handling (which it watches) is replaced here.
            AppStatus.should_exit = True
            for server in servers:
                server.should_exit = True

        _on_signals(on_signal)
        runtime = await Runtime.start(settings, source_service="api")
        processing: Processing | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            data_dir = settings.data_dir.expanduser().resolve()
            out.print(f"data in {data_dir} (REELTRACE_DATA_DIR)", highlight=False)
            where = f"embedded PostgreSQL in {data_dir / 'pgdata'}" if runtime.embedded else "DATABASE_URL"
            out.print(f"PostgreSQL: {where} ({redact(runtime.database_url)})", highlight=False)
            first_start = await bootstrap_key_lines(runtime) if runtime.embedded else []
            processing = assemble_api(runtime, worker=with_worker)
            app = create_app(settings, runtime, processing=processing)
            jobs = processing.periodic_jobs(stop)
            if processing.worker is not None:
                jobs.append(processing.worker.run(stop))
            tasks = [asyncio.create_task(job) for job in jobs]
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=False,
                # Connections still open this long after a stop (a slow client) are closed.
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            )
            listening = f"reeltrace listening on http://{settings.host}:{settings.port}  (docs at /docs)" + (
                "" if with_worker else "  [no worker]"
            )

            def on_started() -> None:
                # Together, last, once the port is bound: no start-up log line buries them.
                for line in first_start:
                    out.print(line, soft_wrap=True, highlight=False, markup=False)
                out.print(listening)

            servers.append(_Server(config, on_started))
            settle_heap()
            if not stop.is_set():
                await servers[0].serve(sockets=[sock])
        finally:
            sock.close()
            await _wind_down(stop, tasks, processing, runtime)

    run(body)


def worker(
    metrics_port: int | None = typer.Option(
        None,
        help=f"Port of this worker's /metrics (REELTRACE_METRICS_PORT, default {DEFAULT_WORKER_METRICS_PORT}; 0 = off).",
    ),
    concurrency: int | None = typer.Option(
        None, help="Requests in flight at once (REELTRACE_WORKER_CONCURRENCY)."
    ),
) -> None:
    """Run a worker: claim requests from PostgreSQL and run them through their pipelines."""
    overrides = {
        k: v
        for k, v in {"metrics_port": metrics_port, "worker_concurrency": concurrency}.items()
        if v is not None
    }
    settings = settings_or_exit(**overrides)
    port = settings.metrics_port if settings.metrics_port is not None else DEFAULT_WORKER_METRICS_PORT

    if port:
        # As `serve` does with its API port: a metrics port in use is a one-line error
        # before anything starts. Only probed here: the server itself starts once the
        # pipeline's series exist (see below).
        listen_socket(settings.host, port, "REELTRACE_METRICS_PORT").close()
    configure_tracing("reeltrace-worker")
    instrument_httpx()

    async def body() -> None:
        stop = asyncio.Event()
        _on_signals(stop.set)
        runtime = await Runtime.start(settings, source_service="worker")
        processing: Processing | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            # Built first, so the first scrape already sees every stage series at zero.
            processing, the_worker = assemble_worker(runtime)
            if port:
                # Its own port: a worker process's metrics are scraped apart from the API's.
                try:
                    start_http_server(port, addr=settings.host, registry=get_metrics().registry)
                except OSError as exc:  # taken since the probe
                    raise cannot_listen(settings.host, port, exc, "REELTRACE_METRICS_PORT") from None
                out.print(f"worker metrics on http://{settings.host}:{port}/metrics")
            tasks = [asyncio.create_task(job) for job in processing.periodic_jobs(stop)]
            out.print(f"worker {the_worker.worker_id} started (concurrency {settings.worker_concurrency})")
            settle_heap()
            await the_worker.run(stop)
        finally:
            await _wind_down(stop, tasks, processing, runtime)

    # uvloop's event loop: with it a worker spends less CPU per lifecycle (bench_telemetry,
    # "on, uvloop": 7 % and 16 % in two runs). `serve` keeps asyncio's: its time goes to FastAPI,
    # pydantic and psycopg rather than the loop, and uvloop was not measured to help it.
    run(body, loop_factory=uvloop.new_event_loop)
