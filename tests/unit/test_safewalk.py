"""The walk root uses to change shared content (safewalk.py), on real folders: links are yielded
as links and never followed, and a folder swapped for a link right after the walk saw it is
still the folder that gets listed (the deterministic form of tests/attacks/test_attack_content_race.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mlworkshop import safewalk


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    top, outside = tmp_path / "top", tmp_path / "outside"
    for folder in (top / "a" / "b", outside / "deep"):
        folder.mkdir(parents=True)
    (top / "a" / "b" / "file.txt").write_text("x")
    (top / "one.txt").write_text("x")
    (outside / "secret.txt").write_text("x")
    (top / "link").symlink_to(outside)
    return top, outside


def _walk(top: Path) -> list[tuple[str, int]]:
    """(path relative to top's parent, file type) of each entry, as the walk yields them."""
    return [
        (os.path.relpath(path, top.parent), stat.S_IFMT(os.fstat(fd).st_mode))
        for path, fd in safewalk.entries(top)
    ]


def test_top_first_each_folder_before_its_entries_and_a_link_is_not_followed(tmp_path):
    top, _outside = _tree(tmp_path)
    seen = _walk(top)
    assert seen == [
        ("top", stat.S_IFDIR),
        ("top/a", stat.S_IFDIR),
        ("top/a/b", stat.S_IFDIR),
        ("top/a/b/file.txt", stat.S_IFREG),
        ("top/link", stat.S_IFLNK),
        ("top/one.txt", stat.S_IFREG),
    ]
    assert [p for p, _ in _walk(top) if "secret" in p or "deep" in p] == []


def test_a_top_that_is_a_link_is_yielded_as_a_link_and_not_walked(tmp_path):
    top, _outside = _tree(tmp_path)
    assert _walk(top / "link") == [("link", stat.S_IFLNK)]
    assert list(safewalk.entries(tmp_path / "missing")) == []


def test_a_folder_swapped_for_a_link_after_the_walk_saw_it_is_still_the_one_listed(tmp_path):
    top, outside = _tree(tmp_path)
    seen = []
    for path, fd in safewalk.entries(top):
        seen.append(os.path.relpath(path, top))
        if path == str(top / "a"):  # the walk has it open: swap it for a link to outside
            os.rename(top / "a", top / "a-real")
            (top / "a").symlink_to(outside)
            os.chmod(f"/proc/self/fd/{fd}", 0o700)  # changed through the fd
    assert "a/secret.txt" not in seen and "a/deep" not in seen
    assert "a/b/file.txt" in seen  # the real folder, wherever it is now
    assert stat.S_IMODE((top / "a-real").stat().st_mode) == 0o700
    assert stat.S_IMODE(outside.stat().st_mode) != 0o700


def test_stopping_early_closes_every_descriptor(tmp_path):
    top, _outside = _tree(tmp_path)
    before = set(os.listdir("/proc/self/fd"))
    walk = safewalk.entries(top)
    for path, _fd in walk:
        if path.endswith("b"):
            break
    walk.close()
    assert set(os.listdir("/proc/self/fd")) <= before  # nothing left open


def test_change_sets_group_and_mode_through_the_descriptor(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("x")
    os.chmod(target, 0o644)
    fd = safewalk.open_nofollow(str(target))
    try:
        safewalk.change(fd, os.fstat(fd), None, 0o664)
    finally:
        os.close(fd)
    assert stat.S_IMODE(target.stat().st_mode) == 0o664
