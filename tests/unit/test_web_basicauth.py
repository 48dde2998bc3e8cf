"""Basic auth: bcrypt off the loop, good pairs remembered without the password, bounded work."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest

from collector import web_basicauth
from collector.web_basicauth import MAX_PENDING, BasicAuth, Verdict, parse_basic
from tests.webtls import basic_auth, bcrypt_hash

T = TypeVar("T")
PASSWORD = "correct horse battery staple"


def basic(user: str, password: str) -> str:
    return basic_auth(user, password)["Authorization"]


class CountingExecutor(ThreadPoolExecutor):
    """Counts bcrypt checks; with `gate` set, each check waits for the gate to open."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(max_workers=MAX_PENDING)
        self.checks = 0
        self.gate = gate

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.checks += 1
        gate = self.gate

        def gated() -> T:
            if gate is not None:
                gate.wait(10)
            return fn(*args, **kwargs)

        return super().submit(gated)


@pytest.fixture
def executor() -> Iterator[CountingExecutor]:
    pool = CountingExecutor()
    yield pool
    pool.shutdown()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("Bearer abc", None),
        ("Basic !!!", None),
        ("Basic " + base64.b64encode(b"no-colon").decode(), None),
        (basic("prometheus", "a:b"), ("prometheus", "a:b")),
        ("basic " + base64.b64encode(b"u:").decode(), ("u", "")),
    ],
)
def test_parse_basic(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic(header) == expected


async def test_right_password_is_checked_once_then_remembered(executor: CountingExecutor) -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash(PASSWORD)}, executor)
    assert await auth.check(basic("prometheus", PASSWORD)) is Verdict.OK
    assert await auth.check(basic("prometheus", PASSWORD)) is Verdict.OK
    assert executor.checks == 1


async def test_beyond_the_bound_the_first_users_stay_remembered(
    executor: CountingExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Room for one pair: the first user's stays; the second user's is checked each time."""
    monkeypatch.setattr(web_basicauth, "REMEMBERED_PAIRS", 1)
    auth = BasicAuth({"first": bcrypt_hash(PASSWORD), "second": bcrypt_hash(PASSWORD)}, executor)
    assert await auth.check(basic("first", PASSWORD)) is Verdict.OK
    assert await auth.check(basic("second", PASSWORD)) is Verdict.OK
    assert await auth.check(basic("second", PASSWORD)) is Verdict.OK
    assert executor.checks == 3
    assert await auth.check(basic("first", PASSWORD)) is Verdict.OK
    assert executor.checks == 3


async def test_wrong_password_and_unknown_user_both_cost_a_check(
    executor: CountingExecutor,
) -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash(PASSWORD)}, executor)
    assert await auth.check(basic("prometheus", "wrong")) is Verdict.INVALID
    assert await auth.check(basic("prometheus", "wrong")) is Verdict.INVALID  # not remembered
    assert await auth.check(basic("grafana", PASSWORD)) is Verdict.INVALID
    assert executor.checks == 3
    assert await auth.check(None) is Verdict.NO_CREDENTIALS
    assert executor.checks == 3


async def test_a_password_longer_than_bcrypt_reads_is_wrong(executor: CountingExecutor) -> None:
    long_password = "x" * 72
    auth = BasicAuth({"prometheus": bcrypt_hash(long_password)}, executor)
    assert await auth.check(basic("prometheus", long_password)) is Verdict.OK
    assert await auth.check(basic("prometheus", long_password + "tail")) is Verdict.INVALID


async def test_memory_holds_no_password(executor: CountingExecutor) -> None:
    auth = BasicAuth({"prometheus": bcrypt_hash(PASSWORD)}, executor)
    assert await auth.check(basic("prometheus", PASSWORD)) is Verdict.OK
    held = repr({name: getattr(auth, name) for name in auth.__slots__})
    assert PASSWORD not in held
    assert PASSWORD.encode().hex() not in held


async def test_checks_beyond_the_bound_are_refused_without_a_check() -> None:
    gate = threading.Event()
    pool = CountingExecutor(gate)
    try:
        auth = BasicAuth({"prometheus": bcrypt_hash(PASSWORD)}, pool)
        waiting = [
            asyncio.ensure_future(auth.check(basic("prometheus", f"guess {n}")))
            for n in range(MAX_PENDING)
        ]
        await asyncio.sleep(0.05)
        assert await auth.check(basic("prometheus", PASSWORD)) is Verdict.OVERLOADED
        assert pool.checks == MAX_PENDING
        gate.set()
        assert await asyncio.gather(*waiting) == [Verdict.INVALID] * MAX_PENDING
        assert await auth.check(basic("prometheus", PASSWORD)) is Verdict.OK  # free again
    finally:
        gate.set()
        pool.shutdown()
