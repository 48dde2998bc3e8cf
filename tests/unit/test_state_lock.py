"""The state file's lock: one holder at a time, released on close, a clear refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.state_lock import StateInUseError, StateLock


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    first = StateLock(tmp_path / "state.json")
    first.acquire()
    assert first.path.read_text() == f"{os.getpid()}\n"
    second = StateLock(tmp_path / "state.json")
    with pytest.raises(StateInUseError, match=rf"in use by another .* \(process {os.getpid()}\)"):
        second.acquire()
    first.release()
    first.release()  # a second release is nothing
    second.acquire()
    second.release()


def test_a_lock_file_without_a_process_id_still_refuses(tmp_path: Path) -> None:
    first = StateLock(tmp_path / "state.json")
    first.acquire()
    first.path.write_text("")
    with pytest.raises(StateInUseError, match=r"petra-collector: it holds .*state\.json\.lock"):
        StateLock(tmp_path / "state.json").acquire()
    first.release()


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        StateLock(tmp_path / "missing" / "state.json").acquire()
