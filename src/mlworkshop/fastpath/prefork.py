"""Fill the fork server's free memory before it forks, so servers write to pages of their own.

A forked server shares every page of the fork server until it writes to one; the first write
copies the whole 4 KiB page into the server's own memory. Python's allocators reuse free space
first: pymalloc (objects up to 512 bytes) hands out the free slots of partly used pools, and
glibc's malloc (larger ones) the free chunks of its heap. After preloading, the fork server has
thousands of such slots scattered over the pages its imports left behind, so a server's first
few thousand new objects each land on a different shared page and copy it: a page of memory
for one small object. Taking that free space in the fork server once, before any fork, sends
every server's new objects to fresh pages, packed together.

Measured (`bench/rush.py --n 30 --only mlworkshop`, idle servers after the rush, two runs each):
32.4 and 32.3 MiB PSS per server before, 31.3 and 31.2 after (own 31.2 → 30.2); the fork
server keeps ~7 MiB of heap and ~0.6 MiB of small slots it will never use, pages it already had.

Both fills are best effort: another allocator (PYTHONMALLOC=malloc, a libc without
mallinfo2) or an output this module does not understand leaves the memory as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
import tempfile

# held for the fork server's life: the free space they took must stay taken
_SMALL: list[list] = []
_HEAP: list[int] = []

_CLASS_LINE = re.compile(r"\s*\d+\s+(\d+)\s+\d+\s+\d+\s+(\d+)\s*$")  # class size pools used avail
LARGEST_CHUNK = 1 << 16  # glibc's malloc maps larger requests on their own (mmap threshold)
SMALLEST_CHUNK = 32
TOP_TRIES = 8


def free_small_blocks() -> dict[int, int]:
    """pymalloc's free slots in partly used pools, by block size (sys._debugmallocstats, which
    only writes to the C stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return {
        int(m[1]): int(m[2]) for m in map(_CLASS_LINE.match, text.splitlines()) if m and int(m[2])
    }


def _object_of(size: int):
    """A maker of objects that pymalloc puts in blocks of exactly `size` bytes (64-bit CPython:
    object() is 16 bytes, a 2-digit int 32, bytes of length n is 33 + n), none of them tracked
    by the garbage collector or kept on a free list."""
    if size == 16:
        return lambda i: object()
    if size == 32:
        return lambda i: (1 << 40) + i
    if size >= 48:
        return lambda i, n=size - 33: bytes(n)
    return None


def fill_small_blocks(rounds: int = 3) -> tuple[int, int]:
    """Take pymalloc's free slots. Returns (free slots before, after)."""
    before = free_small_blocks()
    free = before
    for _ in range(rounds):
        taken = 0
        for size, count in free.items():
            make = _object_of(size)
            if make is None or not size - 16 < sys.getsizeof(make(0)) <= size:
                continue  # another build's object sizes: leave this size alone
            _SMALL.append([make(i) for i in range(count)])
            taken += count
        free = free_small_blocks()
        if not taken:
            break
    return sum(before.values()), sum(free.values())


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        )
    ]


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallinfo2.restype = _MallInfo2  # AttributeError where there is none (glibc < 2.33)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    return libc


def _loose(info: _MallInfo2) -> int:
    """Free bytes inside the heap, not counting its top (which only grows into fresh pages)."""
    return info.fordblks - info.keepcost


def fill_heap() -> tuple[int, int]:
    """Take the free chunks inside glibc's heap, largest first. Returns (free bytes before,
    after). A chunk handed out above where the heap's top began came from fresh memory, not from
    free space; glibc sometimes does that before it has sorted its free chunks, so each size is
    tried until it has come from the top a few times (those are given back)."""
    libc = _libc()
    libc.malloc_trim(0)  # whole free pages go back to the system first: nobody copies those
    info = libc.mallinfo2()
    before = _loose(info)
    top = libc.sbrk(0) - info.keepcost  # where the heap's unused top begins
    remaining, size = before, LARGEST_CHUNK
    while size >= SMALLEST_CHUNK:
        fresh: list[int] = []
        while remaining >= size and len(fresh) < TOP_TRIES:
            chunk = libc.malloc(size)
            if not chunk:
                break
            if chunk >= top:
                fresh.append(chunk)
                continue
            _HEAP.append(chunk)
            remaining -= size
        for chunk in fresh:
            libc.free(chunk)
        size //= 2
    return before, _loose(libc.mallinfo2())


def fill_free_space() -> str:
    """Both fills; what they did, for the fork server's log line."""
    done = []
    try:
        before, after = fill_small_blocks()
        done.append(f"{before - after} free object slots")
    except (OSError, ValueError) as exc:
        done.append(f"no object slots ({exc})")
    try:
        before, after = fill_heap()
        done.append(f"{(before - after) >> 10} KiB of free heap")
    except (OSError, AttributeError) as exc:
        done.append(f"no heap ({exc})")
    return ", ".join(done)
