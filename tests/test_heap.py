"""heap.release_free_memory: freed C-heap pages go back to the system (glibc Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dictation.heap import _malloc_trim, release_free_memory


def _rss_anon_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None,
                    reason="needs glibc's malloc_trim (Linux)")
def test_freed_heap_memory_is_returned() -> None:
    blocks = [bytearray(4096) for _ in range(40_000)]  # 160 MiB of small heap blocks
    for block in blocks[:-1]:
        block[0] = 1  # touched: resident
    held = _rss_anon_kib()
    keep = blocks[-1]  # the heap's top stays in use: a plain free() cannot shrink it
    del blocks
    assert release_free_memory()
    assert held - _rss_anon_kib() > 100 * 1024  # KiB
    assert keep is not None


def test_no_op_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    _malloc_trim.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert _malloc_trim() is None and release_free_memory() is False
    finally:
        _malloc_trim.cache_clear()
