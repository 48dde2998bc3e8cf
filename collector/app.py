"""Wires config, client, scheduler, metrics and web together; owns start-up,
reload and an orderly shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Final

import aiohttp
from aiohttp import web
from prometheus_client import Gauge, ProcessCollector

from collector import __version__, memory_gc
from collector.config import (
    NO_OVERRIDES,
    CliOverrides,
    LoadedConfig,
    OrgConfig,
    ServerSettings,
    Settings,
    iter_orgs_in_shard,
    listen_text,
    load_config,
)
from collector.config_reader import ConfigError
from collector.exposition import Exposition
from collector.logs import REDACTOR, configure_logging, get_logger
from collector.metrics import CollectorMetrics, PetraCollector, tenant_families
from collector.open_files import OpenFilesLimit, connection_cap, raise_open_files_limit
from collector.petra_client import new_client, new_session
from collector.routes import Sections
from collector.scheduler import Scheduler
from collector.sdnotify import SystemdNotifier
from collector.state import OrgState
from collector.state_lock import StateInUseError, StateLock
from collector.state_store import StateWriter, load_state, log_load
from collector.web_app import make_web_app
from collector.web_config import WebConfig
from collector.web_guard import CHECK_SECONDS, WebGuard
from collector.web_listener import Listener

WEB_SHUTDOWN_SECONDS: Final = 2.0


class StartupError(Exception):
    """The daemon cannot start (for example, the listen address is taken)."""

    def __init__(self, message: str, *, config_error: bool = False) -> None:
        super().__init__(message)
        self.config_error = config_error  # exit 2: the config asks for something impossible


class Daemon:
    """The running collector. `run()` returns after SIGTERM/SIGINT or `stop()`.

    It runs `loaded` with `overrides` applied, and applies them again to every
    reloaded file; each load (the first one and every reload) is logged once.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        overrides: CliOverrides = NO_OVERRIDES,
        config_path: str | None = None,
        environ: Mapping[str, str] | None = None,
        install_signal_handlers: bool = True,
        web_config: WebConfig | None = None,
        web_config_check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._settings = overrides.apply(loaded.settings)
        self._start_warnings = loaded.warnings
        self._config_path = config_path
        self._overrides = overrides
        self._notifier = SystemdNotifier(environ)
        self._install_signals = install_signal_handlers
        self._log = get_logger()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._scheduler: Scheduler | None = None
        self._session: aiohttp.ClientSession | None = None
        self._web_runner: web.AppRunner | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._secrets: set[str] = set()
        self._state_writer: StateWriter | None = None
        self._state_lock: StateLock | None = None
        self.bound_port: int | None = None
        self.serving = asyncio.Event()
        names = self._settings.metrics.tenant_name_labels
        self._exposition = Exposition(
            PetraCollector(
                self.org_states,
                lambda: self.max_staleness,
                tenant_families=tenant_families(name_labels=names),
            )
        )
        own = self._exposition.own
        self._metrics = CollectorMetrics(own)
        # The standard process_* series (memory, CPU, open fds) and the task count:
        # what an operator watches to see that months of running leak nothing.
        ProcessCollector(registry=own)
        self._task_count = _TaskCount()
        Gauge(
            "petra_collector_asyncio_tasks",
            "asyncio tasks alive in the daemon (about one per org, plus a few).",
            registry=own,
        ).set_function(self._task_count)
        self._guard = WebGuard(web_config, own, self._log, check_seconds=web_config_check_seconds)
        self._listener = Listener(
            own,
            self._log,
            header_timeout=self._settings.server.header_timeout_seconds,
            ssl_context=self._guard.ssl_context,
            answer_headers=lambda: self._guard.answer_headers,
        )
        self._open_files: OpenFilesLimit | None = None

    # -- what the web side reads ---------------------------------------------------

    @property
    def exposition(self) -> Exposition:
        return self._exposition

    @property
    def ready(self) -> bool:
        return (
            self._scheduler is not None and self._scheduler.running and self.bound_port is not None
        )

    @property
    def max_staleness(self) -> float:
        return self._settings.polling.max_staleness_seconds

    @property
    def telemetry_path(self) -> str:
        return self._settings.server.telemetry_path

    @property
    def shard(self) -> str | None:
        return None if self._settings.shard is None else str(self._settings.shard)

    def org_states(self) -> list[OrgState]:
        return [] if self._scheduler is None else self._scheduler.states()

    def owned_orgs(self, settings: Settings) -> tuple[OrgConfig, ...]:
        return tuple(iter_orgs_in_shard(settings.orgs, settings.shard, settings.sharding.copies))

    # -- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        settings = self._settings
        # First of all, so a SIGHUP or SIGTERM during start-up is handled, not fatal.
        self._install_signal_handlers()
        self._session = new_session()
        try:
            scheduler = Scheduler(
                new_client(self._session, settings.api),
                Sections.of(settings),
                logger=self._log,
                on_keys_changed=self._remember_secrets,
                on_change=self._state_changed,
            )
            self._scheduler = scheduler
            self._adopt(settings)
            self._log_loaded(self._start_warnings, settings, "start")
            await self._restore_state(scheduler, settings)
            await self._start_web(settings.server)
            async with asyncio.TaskGroup() as group:
                writer = self._state_writer
                saving = None if writer is None else group.create_task(writer.run(), name="state")
                polling = group.create_task(scheduler.run(), name="scheduler")
                await _wait_running(scheduler, polling)
                self._announce_ready()
                watchdog = group.create_task(self._watchdog(), name="watchdog")
                web_config_watch = group.create_task(self._guard.watch(), name="web-config")
                settling = group.create_task(memory_gc.keep_settled(), name="gc-settle")
                counting = group.create_task(self._task_count.keep_counting(), name="task-count")
                await self._stop.wait()
                self._log.info("stopping", reason="signal or stop request")
                self._notifier.stopping()
                scheduler.stop()
                await polling
                if writer is not None and saving is not None:
                    writer.stop()  # one last write, with every in-flight outcome in it
                    await saving
                watchdog.cancel()
                web_config_watch.cancel()
                settling.cancel()
                counting.cancel()
                for task in list(self._background):
                    task.cancel()
        finally:
            self._remove_signal_handlers()
            await self._close()
        self._log.info("stopped")

    def _state_changed(self) -> None:
        if self._state_writer is not None:
            self._state_writer.notify()

    async def _restore_state(self, scheduler: Scheduler, settings: Settings) -> None:
        """Serve what the state file kept, before the first scrape can come."""
        if settings.state.path is None:
            return
        path = Path(settings.state.path)
        self._lock_state(path)
        started = time.time()
        result = await asyncio.to_thread(load_state, path, started)
        log_load(self._log, path, result)
        saved = result.state
        if saved is not None:
            restored = scheduler.restore(saved.orgs, counters=saved.clean_stop)
            self._log.info(
                "state_restored",
                path=str(path),
                orgs=len(restored),
                orgs_in_file=len(saved.orgs),
                orgs_fresh=len(self.org_states()) - len(restored),
                age_seconds=round(started - saved.written_at, 1),
                clean_stop=saved.clean_stop,
                read_seconds=round(time.time() - started, 3),
                ignored_bytes=result.ignored_bytes,
            )
        self._state_writer = StateWriter(
            path,
            self.org_states,
            write_delay=settings.state.write_delay_seconds,
            monotonic=scheduler.monotonic,
            logger=self._log,
        )
        if saved is not None and saved.clean_stop:
            # Before any poll: the file no longer says "clean stop", so a crash of this
            # run cannot bring back counters older than what Prometheus will see.
            await self._state_writer.write(clean_stop=False)
        else:
            self._state_writer.notify()

    def _lock_state(self, path: Path) -> None:
        """One collector per state file: a second one pointed at it does not start."""
        lock = StateLock(path)
        try:
            lock.acquire()
        except StateInUseError as error:
            raise StartupError(str(error), config_error=True) from None
        except OSError as error:  # then writing it fails too, and says so, retried
            self._log.warning(
                "state_lock_failed",
                path=str(lock.path),
                error=error.strerror or str(error),
                action="going on without checking that no other collector uses state.path",
            )
            return
        self._state_lock = lock

    async def _close(self) -> None:
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None
        await self._listener.close()
        if self._web_runner is not None:
            await self._web_runner.cleanup()
            self._web_runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._guard.close()

    async def _start_web(self, server: ServerSettings) -> None:
        self._open_files = raise_open_files_limit()
        app = make_web_app(self, self._guard)
        app.middlewares.insert(0, self._listener.middleware)  # outermost: auth is busy too
        # No handler options here: the listener makes each connection's handler itself,
        # with its own (web_listener._HANDLER_OPTIONS: no access log, the keep-alive).
        runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=WEB_SHUTDOWN_SECONDS,
        )
        await runner.setup()
        assert runner.server is not None  # noqa: S101 - setup() made it
        try:
            port = self._listener.start(
                runner.server,
                server.listen,
                max_connections=connection_cap(server.max_connections, self._open_files.now),
            )
        except OSError as error:
            await runner.cleanup()
            raise StartupError(f"cannot listen on {error.strerror or error}") from None
        self._web_runner = runner
        self.bound_port = port
        self.serving.set()

    def _announce_ready(self) -> None:
        settings = self._settings
        owned = len(self.org_states())
        self._log.info(
            "started",
            version=__version__,
            listen=listen_text(settings.server.listen, first_port=self.bound_port),
            telemetry_path=settings.server.telemetry_path,
            tls=self._guard.ssl_context is not None,
            basic_auth=bool(self._guard.config and self._guard.config.users),
            orgs=owned,
            shard=self.shard,
            **self._connection_limits(),
        )
        self._notifier.ready(f"polling {owned} orgs")

    def _connection_limits(self) -> dict[str, object]:
        """What the `started` event says of the listener's limits (see web_listener)."""
        files = self._open_files
        assert files is not None  # noqa: S101 - _start_web ran before
        limits: dict[str, object] = {
            "open_files_limit": files.now,
            "max_connections": self._listener.max_connections,
            "header_timeout_seconds": self._settings.server.header_timeout_seconds,
        }
        if files.before != files.now:
            limits["open_files_limit_raised_from"] = files.before
        configured = self._settings.server.max_connections
        if configured != self._listener.max_connections:
            limits["max_connections_configured"] = configured
        return limits

    async def _watchdog(self) -> None:
        interval = self._notifier.watchdog_interval
        if interval is None:
            return
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)

    def _install_signal_handlers(self) -> None:
        if not self._install_signals:
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_in_background)

    def _remove_signal_handlers(self) -> None:
        if not self._install_signals:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    def _reload_in_background(self) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(self.reload("SIGHUP"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- config --------------------------------------------------------------------------

    def _adopt(self, settings: Settings) -> None:
        """Make `settings` the running config (first start and every reload)."""
        assert self._scheduler is not None  # noqa: S101 - run() creates it before adopting
        owned = self.owned_orgs(settings)
        self._remember_secrets([org.key.reveal() for org in settings.orgs])
        self._scheduler.apply(owned, Sections.of(settings))
        self._settings = settings
        self._metrics.config_loaded(len(owned), time.time())

    def _remember_secrets(self, secrets: list[str]) -> None:
        # Old keys stay on the list: a rotated-away key is still a secret.
        self._secrets.update(secrets)
        REDACTOR.set_secrets(self._secrets)

    async def reload(self, reason: str) -> list[str]:
        """Validate the config file completely, then apply it at once; or change nothing."""
        async with self._reload_lock:
            if self._config_path is None:
                return ["this instance was not started from a config file; nothing to reload"]
            if self._scheduler is None:
                return ["still starting; reload again once it serves"]
            self._notifier.reloading()
            try:
                loaded = await asyncio.to_thread(load_config, self._config_path)
            except ConfigError as error:
                self._metrics.config_rejected()
                self._log.error(
                    "config_reload_failed",
                    source=self._config_path,
                    reason=reason,
                    problems=error.problems,
                )
                self._notifier.ready("config reload rejected; still running the previous one")
                return error.problems
            settings = self._overrides.apply(loaded.settings)
            self._apply_reloaded(settings)
            self._log_loaded(loaded.warnings, self._settings, reason)
            self._notifier.ready(f"polling {len(self.org_states())} orgs")
            return []

    def _apply_reloaded(self, settings: Settings) -> None:
        old = self._settings
        # The listener, the web config it was opened with and the metric families stay
        # until a restart (the web config's own files are watched and re-read by the guard):
        # every field of `server` and `metrics`, so a new one is said without a line here.
        for setting, running, configured in _restart_only(old, settings):
            if running != configured:
                self._log.warning(
                    "config_needs_restart",
                    setting=setting,
                    running=str(running),
                    configured=str(configured),
                )
        settings = replace(settings, server=old.server, metrics=old.metrics)
        if settings.state != old.state:
            self._log.warning(
                "config_needs_restart",
                setting="state",
                running=str(old.state.path),
                configured=str(settings.state.path),
            )
            settings = replace(settings, state=old.state)
        if settings.logging != old.logging:
            configure_logging(settings.logging.format, settings.logging.level)
        if settings.api != old.api and self._session is not None and self._scheduler is not None:
            self._scheduler.set_fetcher(new_client(self._session, settings.api))
        self._adopt(settings)

    def _log_loaded(self, warnings: tuple[str, ...], settings: Settings, reason: str) -> None:
        for warning in warnings:
            self._log.warning("config_warning", message=warning)
        self._log.info(
            "config_loaded",
            source=settings.source,
            reason=reason,
            orgs=len(self.org_states()),
            orgs_in_file=len(settings.orgs),
            shard=self.shard,
        )


class _TaskCount:
    """The gauge's value: asyncio tasks alive, as `keep_counting` last counted them.

    Counting walks every task (one or two per org: about 10 ms at 20,000), so it is done
    in the background every COUNT_EVERY_SECONDS, not while a scrape waits; a leak shows
    over minutes. Until the first count, a read counts for itself."""

    COUNT_EVERY_SECONDS: Final = 10.0

    def __init__(self) -> None:
        self._count: float | None = None

    def __call__(self) -> float:
        return _count_tasks() if self._count is None else self._count

    async def keep_counting(self, every: float = COUNT_EVERY_SECONDS) -> None:
        while True:
            self._count = _count_tasks()
            await asyncio.sleep(every)


def _restart_only(old: Settings, new: Settings) -> Iterator[tuple[str, object, object]]:
    """Each setting a reload does not change, as running and as configured."""
    for section, running, configured in (
        ("server", old.server, new.server),
        ("metrics", old.metrics, new.metrics),
    ):
        for setting in fields(running):
            was, now = getattr(running, setting.name), getattr(configured, setting.name)
            if setting.name == "listen":
                was, now = listen_text(was), listen_text(now)
            yield f"{section}.{setting.name}", was, now


def _count_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # read outside the loop (tests, a debugger): nothing to count
        return 0.0


async def _wait_running(scheduler: Scheduler, task: asyncio.Task[None]) -> None:
    """Until the scheduler runs; re-raises at once if it failed to start."""
    started = asyncio.ensure_future(scheduler.wait_running())
    await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if task.done():
        task.result()


async def run_daemon(
    loaded: LoadedConfig,
    *,
    config_path: str | None,
    overrides: CliOverrides,
    web_config: WebConfig | None = None,
) -> int:
    """The `run` command: serve until stopped. Returns the exit code."""
    settings = overrides.apply(loaded.settings)
    configure_logging(settings.logging.format, settings.logging.level)
    daemon = Daemon(loaded, overrides=overrides, config_path=config_path, web_config=web_config)
    try:
        await daemon.run()
    except StartupError as error:
        get_logger().error("startup_failed", error=str(error))
        return 2 if error.config_error else 1
    return 0
