"""systemd's notify protocol, spoken directly: one datagram per state change.

`Type=notify` units learn READY=1 once we serve, RELOADING=1 / READY=1
around reloads, STOPPING=1 on shutdown, and WATCHDOG=1 pings when
`WATCHDOG_USEC` is set. Outside systemd (no NOTIFY_SOCKET) all of it is a
no-op. Failures to send are swallowed: a notification must never be the
reason the daemon stops.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self._address = address if address.startswith(("/", "\0")) else ""
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` lines; True when a datagram left."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop on a receiver that is not reading.
                sock.setblocking(False)
                sock.connect(self._address)
                sock.sendall("\n".join(fields).encode())
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # systemd >= 253 wants MONOTONIC_USEC with RELOADING=1 for Type=notify-reload.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half the watchdog timeout (systemd's advice), or None when it is not for us."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2
