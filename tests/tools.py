"""External programs some tests need: promtool, prometheus, systemd-analyze.

A test asks for one with `require_tool`. Where the program is missing, the
test is skipped with the apt-get line that installs it, except when
PETRA_REQUIRE_TOOLS=1 (CI sets it): then a missing program fails the test, so
CI can never pass by skipping what it was meant to check.
"""

from __future__ import annotations

import os
import shutil
from typing import Final

import pytest

REQUIRE_TOOLS_ENV: Final = "PETRA_REQUIRE_TOOLS"


def require_tool(name: str, package: str) -> str:
    """The path of program `name`; skip (or fail under PETRA_REQUIRE_TOOLS=1) without it."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} not installed: apt-get install {package}"
    if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_TOOLS_ENV}=1: missing tools fail instead of skipping)")
    pytest.skip(message)
