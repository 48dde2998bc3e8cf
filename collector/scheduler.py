"""One polling loop per org and route, inside every limit at once.

Each org has one loop per route that the config turns on (`routes.ROUTES`:
`/v1/usage` always, `/v1/incidents` and `/v1/billable-users` when enabled; the
latter asked one tenant of the usage report at a time), all the same loop
(`_run_route`) and the same outcome recorder (`_record`); what differs
between routes is in their `routes.Route` description. Before each request a
loop waits, in this order, for: its due time (or an early wake-up, e.g. its
key file changed), its key on its route (one request in flight per key and
route, the route's per-key spacing, and any 429 wait: the routes' budgets
are separate, as Petra's are), a global send slot (`max_requests_per_second`,
evenly spaced), and a connection slot (`concurrency`). The decisions (first
offset, next delay, backoff) are the pure functions at the top of this
module.

Monotonic time is the event loop's (`loop.time()`), so the scheduler runs
under a virtual clock in tests (tests/unit/test_scheduler_virtual_time.py);
the wall clock, used only for the times it records, is passed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import structlog

from collector.apikey import ApiKey
from collector.config import OrgConfig, PollingSettings
from collector.key_watch import KeyWatch
from collector.keys import KeyHolder, KeyStatus
from collector.petra_errors import Forbidden, KeyRejected, PetraError, RateLimited
from collector.ratelimit import KeyBudget, Pacer, RouteBudgets
from collector.routes import ROUTES, Asking, Choice, Fetcher, Route, Sections, tenant_ids
from collector.state import AuthEvent, OrgState
from collector.state_records import Health, SavedOrg

BACKOFF_BASE_SECONDS: Final = 5.0
# A 429 that names no wait: Petra's limits are per minute, so after a minute the
# window has certainly moved on. Jitter keeps orgs sharing a limit from re-colliding.
RATE_LIMIT_DEFAULT_WAIT_SECONDS: Final = 60.0


def _nothing() -> None:
    pass


def initial_offset(name: str, interval: float) -> float:
    """Where in its interval an org's first poll falls: spread, and stable across restarts."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * interval


def resume_delay(
    name: str,
    next_poll_at: float | None,
    now: float,
    *,
    interval: float,
    longest_wait: float,
) -> float:
    """Seconds until a restored org's first poll: its saved due time, kept across the
    restart. Overdue orgs are spread the way first polls are, not sent at once; a due
    time further away than any wait the org could have (a clock set back) is capped."""
    if next_poll_at is None or next_poll_at < now:
        return initial_offset(name, interval)
    return min(next_poll_at - now, longest_wait)


def backoff_delay(
    failures: int, cap: float, rng: Callable[[], float], base: float = BACKOFF_BASE_SECONDS
) -> float:
    """Exponential backoff with jitter in [ceiling/2, ceiling], the ceiling capped at `cap`."""
    ceiling = min(cap, base * 2.0 ** min(max(failures - 1, 0), 30))
    return ceiling / 2.0 + rng() * ceiling / 2.0


def next_delay(
    error: PetraError | None,
    *,
    interval: float,
    auth_failure_interval: float,
    failures: int,
    rng: Callable[[], float],
) -> float:
    """Seconds from this poll's start to the next one."""
    if error is None:
        return interval
    if isinstance(error, KeyRejected):
        return auth_failure_interval
    if isinstance(error, RateLimited):
        wait = error.retry_after
        if wait is None:
            wait = RATE_LIMIT_DEFAULT_WAIT_SECONDS * (1.0 + 0.1 * rng())
        if failures <= 1:
            return wait
        # 429 after 429: someone else is using this key's budget too. Back off from
        # a minute, doubling, up to the interval (at least a minute), never below
        # the API's own wait.
        cap = max(interval, RATE_LIMIT_DEFAULT_WAIT_SECONDS)
        return max(wait, backoff_delay(failures, cap, rng, base=RATE_LIMIT_DEFAULT_WAIT_SECONDS))
    return backoff_delay(failures, interval, rng)


@dataclass(slots=True, eq=False)
class _KeyGate:
    """One key on one route: its budget, and one request in flight at a time."""

    budget: KeyBudget
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Wake:
    """An early wake-up for one loop: what `asyncio.Event` does for its one waiter,
    without the deque each Event keeps (about 600 bytes; two per org, 24 MB at
    20,000 orgs)."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        """Until `set()`; one waiter at a time (the loop that owns it)."""
        if self._flag:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class _RouteRunner:
    """One route's loop of one org: its task, its early wake-up, its saved schedule."""

    __slots__ = ("budget_short", "first_delay", "in_flight", "route", "task", "wake")

    def __init__(self, route: Route) -> None:
        self.route = route
        self.wake = _Wake()
        self.first_delay: float | None = None  # set when restored: the saved schedule
        self.task: asyncio.Task[None] | None = None
        self.in_flight = False
        self.budget_short = False  # said so (per-tenant routes): not again until it is not


@dataclass(slots=True, eq=False)
class _OrgRunner:
    config: OrgConfig
    state: OrgState
    keys: KeyHolder
    routes: dict[str, _RouteRunner] = field(default_factory=dict)  # the routes polled

    def wake_all(self) -> None:
        for each in self.routes.values():
            each.wake.set()

    def wake_others(self, route: str) -> None:
        for name, each in self.routes.items():
            if name != route:
                each.wake.set()

    def wake_per_tenant(self) -> None:
        """The org's tenants changed: the routes asked once per tenant have a new one."""
        for each in self.routes.values():
            if each.route.per == "tenant":
                each.wake.set()


class _OrgLog:
    """Logs with the org and its key fingerprint bound, binding only when it logs:
    a structlog `bind` per poll costs more than the rest of the bookkeeping."""

    __slots__ = ("_log", "_state")

    def __init__(self, log: structlog.typing.FilteringBoundLogger, state: OrgState) -> None:
        self._log = log
        self._state = state

    def _bound(self) -> structlog.typing.FilteringBoundLogger:
        state = self._state
        return self._log.bind(org=state.name, key_fingerprint=state.key_fingerprint)

    def info(self, event: str, **fields: object) -> None:
        self._bound().info(event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self._bound().warning(event, **fields)

    def error(self, event: str, **fields: object) -> None:
        self._bound().error(event, **fields)


class Scheduler:
    """Runs and re-plans the per-org loops; `states()` is what readers see."""

    def __init__(
        self,
        fetcher: Fetcher,
        sections: Sections,
        *,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        logger: structlog.typing.FilteringBoundLogger | None = None,
        on_keys_changed: Callable[[list[str]], None] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._on_keys_changed = on_keys_changed
        self._wall = wall_clock
        self._on_change = on_change or _nothing
        self._rng = rng
        self._log: structlog.typing.FilteringBoundLogger = logger or structlog.get_logger()
        self._runners: dict[str, _OrgRunner] = {}
        self._sections = sections
        self._budgets: RouteBudgets[ApiKey] = RouteBudgets(self._rates(self._sections))
        self._gates: dict[tuple[ApiKey, str], _KeyGate] = {}
        self._keys_replaced = False  # a key file changed since the last _drop_unused_keys
        self._key_watch = KeyWatch(self._refresh_key_files, self._log)
        self._pacer = Pacer(sections.polling.max_requests_per_second)
        self._slots = asyncio.Semaphore(sections.polling.concurrency)
        self._group: asyncio.TaskGroup | None = None
        self._running_loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()
        self._running = asyncio.Event()

    @property
    def _polling(self) -> PollingSettings:
        return self._sections.polling

    @staticmethod
    def _rates(sections: Sections) -> dict[str, float]:
        """Each route's requests per minute per key (the same for every org)."""
        return {route.name: route.budget(sections) for route in ROUTES}

    def monotonic(self) -> float:
        """The clock `OrgState`'s `*_monotonic` fields are read on."""
        return self._monotonic()

    def _monotonic(self) -> float:
        # The loop's clock, which also times every sleep here: a test that runs the
        # scheduler on a loop with a virtual clock controls all of its time at once.
        return self._loop().time()

    def _loop(self) -> asyncio.AbstractEventLoop:
        # The loop `run()` runs on, kept while it runs: `get_running_loop()` asks the
        # kernel for the process id (fork safety) on every call, about ten times a poll.
        loop = self._running_loop
        return asyncio.get_running_loop() if loop is None else loop

    @property
    def running(self) -> bool:
        return self._running.is_set() and not self._stopping.is_set()

    def states(self) -> list[OrgState]:
        """A new list each call: readers may keep it while orgs come and go."""
        return [runner.state for runner in self._runners.values()]

    def state(self, name: str) -> OrgState | None:
        runner = self._runners.get(name)
        return None if runner is None else runner.state

    # -- configuration -------------------------------------------------------------

    def restore(self, saved: Mapping[str, SavedOrg], *, counters: bool) -> list[str]:
        """Before `run()`: orgs in `saved` with the same key fingerprint take over their
        saved state and schedule, on every route polled now. Returns the names of the
        orgs restored."""
        now, monotonic_now = self._wall(), self._monotonic()
        asking = Asking(now, self._sections)
        restored = []
        for name, runner in self._runners.items():
            record = saved.get(name)
            if record is None or record.key_fingerprint != runner.state.key_fingerprint:
                continue
            runner.state.restore(
                record, wall_now=now, monotonic_now=monotonic_now, counters=counters
            )
            for route_name, each in runner.routes.items():
                kept = record.routes.get(route_name)
                if kept is None:
                    continue
                route = each.route
                if route.expire is not None:
                    route.expire(runner.state, asking)
                # The loop resumes its saved schedule: no burst, no extra budget.
                interval = self._pace(runner, route)
                remaining_429 = (kept.rate_limited_until or now) - now
                each.first_delay = resume_delay(
                    route.spread_key(name),
                    kept.next_poll_at,
                    now,
                    interval=interval,
                    longest_wait=max(
                        interval, self._polling.auth_failure_interval_seconds, remaining_429
                    ),
                )
                # The 429 pause holds for every org on the key, not only this one; and the
                # key's last request on the route counts: no two closer than its spacing.
                spacing = 60.0 / route.budget(self._sections)
                last = kept.last_poll_at
                wait = max(remaining_429, 0.0 if last is None else spacing - (now - last))
                if wait > 0:
                    self._gate(runner.keys.key, route_name).budget.block(monotonic_now + wait)
            restored.append(name)
        return restored

    def apply(
        self,
        orgs: Iterable[OrgConfig],
        sections: Sections,
    ) -> None:
        """Adopt a new org list and settings. Unchanged orgs keep state and schedule."""
        if sections.polling != self._polling:
            self._adopt_limits(sections.polling)
        self._budgets.set_rates(self._rates(sections))
        self._sections = sections
        wanted = {org.name: org for org in orgs}
        for name in [name for name in self._runners if name not in wanted]:
            removed = self._runners.pop(name)
            for each in removed.routes.values():
                if each.task is not None:
                    each.task.cancel()
        for org in wanted.values():
            existing = self._runners.get(org.name)
            if existing is None:
                self._add(org)
                continue
            if existing.config != org:
                self._update(existing, org)
            self._toggle_routes(existing)
        self._key_watch.track(
            {
                name: runner.keys.source.location
                for name, runner in self._runners.items()
                if runner.keys.watches_file
            }
        )
        self._drop_unused_keys()
        self._on_change()

    def _drop_unused_keys(self) -> None:
        """Budgets and gates only of keys that some org uses (after a reload or a key
        file's rotation, the old key's would stay for the rest of the run)."""
        self._keys_replaced = False
        used = {runner.keys.key for runner in self._runners.values()}
        self._budgets.keep_only(used)
        for pair in [pair for pair in self._gates if pair[0] not in used]:
            del self._gates[pair]

    def _adopt_limits(self, polling: PollingSettings) -> None:
        if polling.max_requests_per_second != self._polling.max_requests_per_second:
            self._pacer = Pacer(polling.max_requests_per_second)
        if polling.concurrency != self._polling.concurrency:
            # In-flight requests release the old semaphore; new ones use this one.
            self._slots = asyncio.Semaphore(polling.concurrency)

    def _toggle_routes(self, runner: _OrgRunner) -> None:
        """Start or stop an org's routes that a reload turned on or off."""
        for route in ROUTES:
            polled = route.name in runner.routes
            if route.enabled(self._sections) == polled:
                continue
            if polled:
                each = runner.routes.pop(route.name)
                runner.state.stop_route(route.name)
                if each.task is not None:
                    each.task.cancel()
            else:
                self._start_route(runner, route)

    def _start_route(self, runner: _OrgRunner, route: Route) -> None:
        if route.new_side is not None:
            runner.state.start_route(route.name, route.new_side())
        each = runner.routes[route.name] = _RouteRunner(route)
        if self._group is not None and not self._stopping.is_set():
            each.task = self._start_task(runner, each)

    def _start_task(self, runner: _OrgRunner, each: _RouteRunner) -> asyncio.Task[None]:
        assert self._group is not None  # noqa: S101 - called only while running
        prefix = "poll" if not each.route.names_itself_in_logs else each.route.name
        return self._group.create_task(
            self._run_route(runner, each), name=f"{prefix}:{runner.config.name}"
        )

    def _add(self, org: OrgConfig) -> None:
        state = OrgState(
            name=org.name,
            key_fingerprint=org.key_fingerprint,
            key_source=org.key_source.describe(),
            interval_seconds=org.interval_seconds,
        )
        runner = _OrgRunner(config=org, state=state, keys=KeyHolder(org.key_source, org.key))
        self._runners[org.name] = runner
        for route in ROUTES:
            if route.enabled(self._sections):
                self._start_route(runner, route)

    def _update(self, runner: _OrgRunner, org: OrgConfig) -> None:
        key_changed = org.key != runner.keys.key or org.key_source != runner.config.key_source
        runner.config = org
        source = org.key_source.describe()
        runner.state.reconfigure(interval_seconds=org.interval_seconds, key_source=source)
        if key_changed:
            runner.keys = KeyHolder(org.key_source, org.key)
            runner.state.key_replaced(org.key_fingerprint, source)
            runner.wake_all()  # a new key is checked at once, on every route
        # A new interval applies from the next poll on: waking every org whose
        # interval changed would re-poll a whole fleet at once after a reload.

    def set_fetcher(self, fetcher: Fetcher) -> None:
        """Use a new client (API settings changed) from the next request on."""
        self._fetcher = fetcher

    # -- running -------------------------------------------------------------------

    async def wait_running(self) -> None:
        await self._running.wait()

    async def run(self) -> None:
        """Poll until `stop()`; then let in-flight requests finish within the grace period."""
        self._running_loop = asyncio.get_running_loop()
        try:
            await self._run()
        finally:
            self._running_loop = None

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for runner in self._runners.values():
                for each in runner.routes.values():
                    each.task = self._start_task(runner, each)
            watcher = group.create_task(self._watch_key_files(), name="watch-key-files")
            self._running.set()
            await self._stopping.wait()
            watcher.cancel()
            await self._drain()
        self._group = None

    def stop(self) -> None:
        self._stopping.set()

    async def _drain(self) -> None:
        """Cancel waiting loops at once; give requests on the wire the grace period."""
        finishing = []
        for runner in self._runners.values():
            for each in runner.routes.values():
                if each.task is None:
                    continue
                if each.in_flight:
                    finishing.append(each.task)
                else:
                    each.task.cancel()
        if finishing:
            await asyncio.wait(finishing, timeout=self._polling.shutdown_grace_seconds)
        for task in finishing:
            task.cancel()

    async def _watch_key_files(self) -> None:
        await self._key_watch.run()

    def _refresh_key_files(self, names: Iterable[str]) -> None:
        """Look at these orgs' key files (`KeyWatch` says which may have changed)."""
        for name in names:
            runner = self._runners.get(name)
            if runner is not None and self._refresh_key(runner):
                runner.wake_all()
        if self._keys_replaced:
            self._drop_unused_keys()

    def _refresh_key(self, runner: _OrgRunner) -> bool:
        """Look at the key file; True when a new key should be tried at once."""
        result = runner.keys.refresh()
        if result.status is KeyStatus.UNCHANGED:
            return False  # the common case: no logger is bound (that costs ~2 us per org)
        log = self._log.bind(org=runner.config.name)
        if result.status is KeyStatus.CHANGED:
            self._keys_replaced = True  # the watcher drops the old key's gates
            old = runner.state.key_fingerprint
            if self._on_keys_changed is not None:
                self._on_keys_changed([runner.keys.key.reveal()])
            runner.state.key_replaced(runner.keys.key.fingerprint, runner.state.key_source)
            log.info(
                "key_reloaded",
                key_fingerprint=runner.state.key_fingerprint,
                previous_key_fingerprint=old,
                source=runner.state.key_source,
            )
            return True
        if result.status is KeyStatus.UNREADABLE:
            log.error(
                "key_unreadable",
                key_fingerprint=runner.state.key_fingerprint,
                error=result.problem,
                action="still using the last key that could be read",
            )
        return False

    async def _sleep_or_wake(self, wake: _Wake, delay: float) -> None:
        if delay > 0 and not wake.is_set():
            # The timer sets the same event an early wake-up does: one timer handle per
            # wait, where `wait_for` would make a Task and a timeout scope.
            timer = self._loop().call_later(delay, wake.set)
            try:
                await wake.wait()
            finally:
                timer.cancel()
        wake.clear()

    async def _run_route(self, runner: _OrgRunner, each: _RouteRunner) -> None:
        """The loop of one route of one org: wait, ask, record, until stopped."""
        route, name = each.route, each.route.name
        delay = each.first_delay
        if delay is None:
            delay = initial_offset(route.spread_key(runner.config.name), self._pace(runner, route))
        runner.state.schedule(name, self._wall() + delay)
        self._on_change()
        while True:
            await self._sleep_or_wake(each.wake, delay)
            if self._stopping.is_set():
                return
            started = self._monotonic()
            try:
                delay = await self._poll(runner, each)
            except Exception as bug:  # noqa: BLE001 - one org's bug must not stop the others
                delay = self._record_bug(runner, route, bug)
            if runner.routes.get(name) is not each:
                return  # turned off by a reload while it asked
            delay = max(0.0, delay - (self._monotonic() - started))
            # Set even when stopping: the state file keeps it, and a restart resumes from it.
            runner.state.schedule(name, self._wall() + delay)
            self._on_change()
            if self._stopping.is_set():
                return

    def _record_bug(self, runner: _OrgRunner, route: Route, bug: Exception) -> float:
        state = runner.state
        interval = self._backoff_cap(runner, route)
        if route.name not in runner.routes:  # turned off by a reload meanwhile
            return interval
        state.count_request(route.name, "error")
        state.record_error(
            route.name, Health.ERROR, f"internal error: {type(bug).__name__}", self._wall(), None
        )
        failures = state.side(route.name).consecutive_failures
        delay = backoff_delay(failures, interval, self._rng)
        self._log.exception(
            "poll_crashed",
            org=state.name,
            key_fingerprint=state.key_fingerprint,
            **route.log_fields(),
            retry_in_seconds=round(delay, 1),
        )
        return delay

    def _pace(self, runner: _OrgRunner, route: Route) -> float:
        """Seconds between two requests of one org on `route` when all goes well: its
        interval, or for a route asked once per tenant its per-key spacing."""
        if route.per == "tenant":
            return 60.0 / route.budget(self._sections)
        return route.timing(self._sections, runner.config).interval

    def _backoff_cap(self, runner: _OrgRunner, route: Route) -> float:
        """The longest backoff after failures: the route's interval, or for a route asked
        once per tenant the time a full round takes (within a spacing and the interval)."""
        interval = route.timing(self._sections, runner.config).interval
        if route.per != "tenant":
            return interval
        spacing = 60.0 / route.budget(self._sections)
        tenants = len(tenant_ids(runner.state.report))
        return min(interval, max(spacing, tenants * spacing))

    def _choose_tenant(
        self, runner: _OrgRunner, each: _RouteRunner, choose: Callable[[OrgState, Asking], Choice]
    ) -> tuple[str | None, float]:
        """For a route asked once per tenant: the route's choice, and said once when its
        budget cannot ask every tenant within the interval. Returns the tenant and 0, or
        None and the seconds until one is due."""
        route, state = each.route, runner.state
        choice = choose(state, Asking(self._wall(), self._sections))
        interval = route.timing(self._sections, runner.config).interval
        short = choice.round_seconds > interval
        if short and not each.budget_short and route.budget_short_event is not None:
            _OrgLog(self._log, state).warning(
                route.budget_short_event,
                **route.log_fields(),
                tenants=choice.tenants,
                round_seconds=round(choice.round_seconds, 1),
                interval_seconds=interval,
                requests_per_minute_per_key=route.budget(self._sections),
            )
        each.budget_short = short
        return choice.tenant, choice.wait

    def _gate(self, key: ApiKey, route: str) -> _KeyGate:
        gate = self._gates.get((key, route))
        if gate is None:
            gate = self._gates[key, route] = _KeyGate(self._budgets.budget(key, route))
        return gate

    async def _poll(self, runner: _OrgRunner, each: _RouteRunner) -> float:
        """One request on one route of one org inside every limit, recorded under the
        key's lock. Returns the delay to the route's next request."""
        route = each.route
        tenant = None
        if route.choose is not None:
            tenant, wait = self._choose_tenant(runner, each, route.choose)
            if tenant is None:
                return wait
        key = runner.keys.key
        gate = self._gate(key, route.name)
        async with gate.lock:
            # Most reservations are due at once: no sleep then, not even a sleep(0).
            now = self._monotonic()
            send_at = gate.budget.reserve(now)
            if send_at > now:
                await asyncio.sleep(send_at - now)
            # Connection slot first, then the send slot: when a hung API frees many
            # connections at once, the queued requests still leave evenly spaced.
            async with self._slots:
                now = self._monotonic()
                send_at = self._pacer.reserve(now)
                if send_at > now:
                    await asyncio.sleep(send_at - now)
                if self._stopping.is_set():
                    return 0.0
                asking = Asking(self._wall(), self._sections, tenant)
                started = self._monotonic()
                each.in_flight = True
                try:
                    answer: object = await route.ask(self._fetcher, key, runner.state, asking)
                    error: PetraError | None = None
                except PetraError as failure:
                    answer, error = None, failure
                finally:
                    each.in_flight = False
                duration = self._monotonic() - started
            if isinstance(error, KeyRejected) and (
                key != runner.keys.key or self._refresh_key(runner)
            ):
                # The key was replaced while this request was on the wire, or its file
                # changed before the watcher's next look (polls no longer look first):
                # the 401 is about the old key. Say nothing of it; try the new one now.
                return 0.0
            if runner.routes.get(route.name) is not each:
                # Turned off by a reload while the request was on the wire.
                return route.timing(self._sections, runner.config).interval
            delay = self._record(
                runner, route, asking=asking, answer=answer, error=error, duration=duration
            )
            if isinstance(error, RateLimited):
                gate.budget.block(self._monotonic() + delay)
        return delay

    def _log_auth_event(
        self,
        log: _OrgLog,
        state: OrgState,
        event: AuthEvent,
        error: KeyRejected,
        *,
        delay: float,
        route: Route,
    ) -> None:
        if event is AuthEvent.FAILED:
            log.error(
                "auth_failed",
                status=401,
                **route.log_fields(),
                consecutive_failures=state.consecutive_failures,
                message=error.api_message,
                key_source=state.key_source,
                next_check_seconds=round(delay, 1),
            )
        elif event is AuthEvent.STILL_FAILING:
            log.warning(
                "auth_still_failing",
                status=401,
                **route.log_fields(),
                consecutive_failures=state.consecutive_failures,
                failing_since=state.auth_failing_since,
            )

    def _record(
        self,
        runner: _OrgRunner,
        route: Route,
        *,
        asking: Asking,
        answer: object,
        error: PetraError | None,
        duration: float,
    ) -> float:
        """Record one request's outcome on any route, and log what is news."""
        state, name = runner.state, route.name
        now = self._wall()
        side = state.side(name)
        previous_failures = side.consecutive_failures
        log = _OrgLog(self._log, state)
        if error is None:
            delay = self._pace(runner, route)
            state.count_request(name, "200")
            event = state.record_success(name, now, duration)
            # The route's log fields are built only for a line: most polls log none.
            if event is AuthEvent.RECOVERED:
                log.info("auth_recovered", after_failures=previous_failures, **route.log_fields())
                runner.wake_others(name)  # they waited at the slow re-check pace
            elif previous_failures:
                log.info("poll_recovered", after_failures=previous_failures, **route.log_fields())
            if route.take(state, answer, asking, log):
                runner.wake_per_tenant()
            return delay
        delay = next_delay(
            error,
            interval=self._backoff_cap(runner, route),
            auth_failure_interval=self._polling.auth_failure_interval_seconds,
            failures=previous_failures + 1,
            rng=self._rng,
        )
        state.count_request(name, error.code)
        fields = route.log_fields()
        if isinstance(error, KeyRejected):
            event = state.record_auth_failure(name, error.message, now, duration, self._monotonic())
            self._log_auth_event(log, state, event, error, delay=delay, route=route)
            if event is AuthEvent.FAILED:
                runner.wake_others(name)  # they see the same key: let them say so soon
        elif isinstance(error, RateLimited):
            state.record_rate_limited(name, error.message, now, duration, now + delay)
            log.warning(
                "rate_limited",
                status=429,
                **fields,
                retry_after_seconds=round(delay, 3),
                retry_after_from_api=error.retry_after is not None,
            )
        else:
            health = Health.FORBIDDEN if isinstance(error, Forbidden) else Health.ERROR
            state.record_error(name, health, error.message, now, duration)
            log.warning(
                "poll_failed",
                status=error.status,
                **fields,
                error=error.message,
                error_type=type(error).__name__,
                consecutive_failures=side.consecutive_failures,
                retry_in_seconds=round(delay, 1),
            )
        if route.expire is not None:
            route.expire(state, asking)
        return delay
