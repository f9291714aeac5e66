"""fastpath.prefork: the free space a process's allocators hold is taken, so what its forked
children allocate lands on fresh pages instead of copying shared ones. Each case runs in a fresh
interpreter: the fills keep what they take for the life of the process.

What it saves a forked server: bench/rush.py (PSS per server), numbers in prefork's docstring.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HOLES = """
import json
from mlworkshop.fastpath import prefork
small = [bytes(31) for _ in range(200_000)]  # 64-byte blocks
del small[::2]
large = [bytes(2000) for _ in range(10_000)]  # glibc's heap, not pymalloc
del large[::2]
"""


def _run(code: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", HOLES + code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_free_object_slots_in_partly_used_pools_are_taken():
    seen = _run(
        "before = prefork.free_small_blocks()[64]\n"
        "prefork.fill_small_blocks()\n"
        "print(json.dumps({'before': before, 'after': prefork.free_small_blocks().get(64, 0)}))"
    )
    assert seen["before"] >= 90_000  # the holes the deletions left
    assert seen["after"] <= 16384 // 64  # at most one pool's worth, in a fresh pool


def test_free_chunks_inside_the_heap_are_taken():
    seen = _run(
        "libc = prefork._libc()\n"
        "before = prefork._loose(libc.mallinfo2())\n"
        "prefork.fill_heap()\n"
        "print(json.dumps({'before': before, 'after': prefork._loose(libc.mallinfo2())}))"
    )
    assert seen["before"] >= 5_000_000  # 5,000 freed chunks of ~2 kB
    assert seen["after"] < seen["before"] // 20


def test_without_pymalloc_nothing_is_taken_and_nothing_fails():
    seen = _run(
        "print(json.dumps({'said': prefork.fill_free_space(), 'free': prefork.free_small_blocks()}))",
        PYTHONMALLOC="malloc",
    )
    assert seen["free"] == {}
    assert seen["said"].startswith("0 free object slots")
