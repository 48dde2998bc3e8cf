"""`tests.tools.require_tool`: skip where a tool is missing, fail instead under CI's flag."""

from __future__ import annotations

import pytest

from tests.tools import REQUIRE_TOOLS_ENV, require_tool

MISSING = "petra-no-such-tool"


def test_present_tool_gives_its_path() -> None:
    """A tool on PATH comes back as its path."""
    assert require_tool("sh", "dash").endswith("/sh")


def test_missing_tool_skips_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the flag, a missing tool skips the test and says which package installs it."""
    monkeypatch.delenv(REQUIRE_TOOLS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install some-package"):
        require_tool(MISSING, "some-package")


def test_missing_tool_fails_when_tools_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """With PETRA_REQUIRE_TOOLS=1 (CI), a missing tool fails the test instead of skipping it."""
    monkeypatch.setenv(REQUIRE_TOOLS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        require_tool(MISSING, "some-package")
