"""Key files re-read on change: rewrites, Kubernetes symlink swaps, vanishing files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collector.apikey import ApiKey
from collector.keys import KeyHolder, KeySource, KeyStatus

OLD = "petra_live_OldKey1111aaaa2222bbbb3333"
NEW = "petra_live_NewKey4444cccc5555dddd6666"
NEWER = "petra_live_Newer7777eeee8888ffff9999x"


def write_key(path: Path, key: str, *, bump_mtime: bool = True) -> None:
    """Write a key file in place; push its mtime on so the change is visible even on coarse
    file systems."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(key + "\n", encoding="utf-8")
    if bump_mtime:
        moment = max(before, path.stat().st_mtime_ns) + 1_000_000_000
        os.utime(path, ns=(moment, moment))


def holder_for(path: Path) -> KeyHolder:
    """A holder as the scheduler builds it: source and the key the config loaded."""
    source = KeySource("file", str(path))
    return KeyHolder(source, source.load({}))


def test_unchanged_file_is_not_reread(tmp_path: Path) -> None:
    """A key file that did not change gives UNCHANGED and keeps the key."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    assert holder.watches_file
    assert holder.refresh().status is KeyStatus.UNCHANGED
    assert holder.key == ApiKey(OLD)


def test_rewritten_file_is_noticed(tmp_path: Path) -> None:
    """Writing a new key into the same file gives CHANGED once and the new key."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)

    write_key(path, NEW)
    assert holder.refresh().status is KeyStatus.CHANGED
    assert holder.key == ApiKey(NEW)
    assert holder.refresh().status is KeyStatus.UNCHANGED


def test_rewrite_with_the_same_key_is_unchanged(tmp_path: Path) -> None:
    """Touching or rewriting the file with the same key is not a key change."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    write_key(path, f"  {OLD}  ")
    assert holder.refresh().status is KeyStatus.UNCHANGED
    assert holder.key == ApiKey(OLD)


def test_file_moved_into_place_is_noticed(tmp_path: Path) -> None:
    """A `mv new key` rotation (a new inode) is noticed even with an identical size and mtime."""
    path = tmp_path / "key"
    write_key(path, OLD, bump_mtime=False)
    holder = holder_for(path)
    staged = tmp_path / "key.new"
    write_key(staged, NEW, bump_mtime=False)
    stat = path.stat()
    os.utime(staged, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    staged.replace(path)

    assert holder.refresh().status is KeyStatus.CHANGED
    assert holder.key == ApiKey(NEW)


def kubernetes_volume(root: Path, key: str) -> Path:
    """Lay out a Secret volume like the kubelet: ..<ts>/key, ..data -> ..<ts>, key -> ..data/key."""
    root.mkdir()
    first = root / "..2026_11_26_05_31_56.000000001"
    first.mkdir()
    (first / "key").write_text(key, encoding="utf-8")
    (root / "..data").symlink_to(first.name)
    (root / "key").symlink_to("..data/key")
    return root / "key"


def kubernetes_update(root: Path, key: str, stamp: str) -> None:
    """Update a Secret volume like the kubelet: new dir, then atomically swap ..data."""
    old_target = (root / "..data").readlink()
    fresh = root / f"..2026_11_26_{stamp}"
    fresh.mkdir()
    (fresh / "key").write_text(key, encoding="utf-8")
    (root / "..data_tmp").symlink_to(fresh.name)
    (root / "..data_tmp").replace(root / "..data")  # rename(2): atomic
    for leftover in (root / old_target).iterdir():
        leftover.unlink()
    (root / old_target).rmdir()


def test_kubernetes_symlink_swap_is_noticed(tmp_path: Path) -> None:
    """An atomic `..data` swap in a Secret volume is noticed, and again on the next rotation."""
    root = tmp_path / "secret"
    path = kubernetes_volume(root, OLD)
    holder = holder_for(path)
    assert holder.key == ApiKey(OLD)

    kubernetes_update(root, NEW, "06_00_00.000000002")
    assert holder.refresh().status is KeyStatus.CHANGED
    assert holder.key == ApiKey(NEW)
    assert holder.refresh().status is KeyStatus.UNCHANGED

    kubernetes_update(root, NEWER, "07_00_00.000000003")
    assert holder.refresh().status is KeyStatus.CHANGED
    assert holder.key == ApiKey(NEWER)


def test_vanished_file_keeps_the_last_key_and_reports_once(tmp_path: Path) -> None:
    """A deleted key file is UNREADABLE once (with a safe message), the old key stays in use."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)

    path.unlink()
    first = holder.refresh()
    assert first.status is KeyStatus.UNREADABLE
    assert first.problem == f"key file {path} not found"
    assert holder.problem == first.problem
    assert holder.key == ApiKey(OLD)
    for _ in range(3):
        again = holder.refresh()
        assert again.status is KeyStatus.UNCHANGED
        assert holder.key == ApiKey(OLD)
    assert holder.problem == first.problem


def test_empty_file_keeps_the_last_key_and_reports_once(tmp_path: Path) -> None:
    """A key file emptied (a half-written rotation) is UNREADABLE once; the old key stays."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)

    write_key(path, "")
    result = holder.refresh()
    assert result.status is KeyStatus.UNREADABLE
    assert result.problem == f"key file {path} is empty"
    assert holder.key == ApiKey(OLD)
    assert holder.refresh().status is KeyStatus.UNCHANGED


def test_recovery_after_an_unreadable_file(tmp_path: Path) -> None:
    """When the file comes back with a new key it is CHANGED and the problem is cleared."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    path.unlink()
    assert holder.refresh().status is KeyStatus.UNREADABLE

    write_key(path, NEW)
    assert holder.refresh().status is KeyStatus.CHANGED
    assert holder.key == ApiKey(NEW)
    assert holder.problem is None


def test_file_back_with_the_same_key_clears_the_problem(tmp_path: Path) -> None:
    """A file that returns with the old key is UNCHANGED, but no longer a problem."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    write_key(path, "")
    assert holder.refresh().status is KeyStatus.UNREADABLE

    write_key(path, OLD)
    assert holder.refresh().status is KeyStatus.UNCHANGED
    assert holder.problem is None


def test_a_different_problem_is_reported_again(tmp_path: Path) -> None:
    """Going from empty to missing is a new problem and is reported again."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    write_key(path, "")
    assert holder.refresh().status is KeyStatus.UNREADABLE
    path.unlink()
    result = holder.refresh()
    assert result.status is KeyStatus.UNREADABLE
    assert result.problem == f"key file {path} not found"


def test_broken_kubernetes_link_keeps_the_last_key(tmp_path: Path) -> None:
    """A `..data` link pointing nowhere (mid-update) keeps the old key and reports once."""
    root = tmp_path / "secret"
    path = kubernetes_volume(root, OLD)
    holder = holder_for(path)
    (root / "..data").unlink()
    (root / "..data").symlink_to("..gone")

    assert holder.refresh().status is KeyStatus.UNREADABLE
    assert holder.refresh().status is KeyStatus.UNCHANGED
    assert holder.key == ApiKey(OLD)


def test_problem_messages_never_show_the_key(tmp_path: Path) -> None:
    """An unreadable key file's message names the file, never the key it held or holds."""
    path = tmp_path / "key"
    write_key(path, OLD)
    holder = holder_for(path)
    write_key(path, f"{NEW} with spaces")
    result = holder.refresh()
    assert result.status is KeyStatus.UNREADABLE
    assert result.problem is not None
    for key in (OLD, NEW):
        assert not [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in result.problem]


@pytest.mark.parametrize(
    "source",
    [KeySource("env", "PETRA_KEY"), KeySource("inline", inline=ApiKey(OLD))],
    ids=["env", "inline"],
)
def test_non_file_sources_never_change(source: KeySource) -> None:
    """Env and inline keys are fixed until a reload; refresh is always UNCHANGED."""
    holder = KeyHolder(source, ApiKey(OLD), environ={"PETRA_KEY": NEW})
    assert not holder.watches_file
    assert holder.refresh().status is KeyStatus.UNCHANGED
    assert holder.key == ApiKey(OLD)
