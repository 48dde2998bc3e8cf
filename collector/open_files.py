"""The process's open-file limit: raised to the most it may be, as Go programs do at start.

Every client connection, poll, key file and state-file write needs a file descriptor.
Many systems start services with a soft limit of 1,024 (or less) under a hard limit a
hundred times that; the soft one is raised to the hard one so the connection cap, not
the limit, decides how many clients are served.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenFilesLimit:
    before: int  # the soft limit the process was started with
    now: int  # the soft limit in force


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE to the hard one (kept where it is if that fails, or if
    the hard one is unlimited, which Linux does not allow as a soft one anyway)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return OpenFilesLimit(soft, soft)
        return OpenFilesLimit(soft, hard)
    return OpenFilesLimit(soft, soft)


def connection_cap(configured: int, limit: int) -> int:
    """The connection cap in force: `configured`, but at most half the open-file limit,
    so the daemon's own files and polls always have the other half."""
    if limit == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, limit // 2))
