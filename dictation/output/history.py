"""The dictation history: what the transcript journal (:mod:`dictation.output.journal`) holds,
searched, copied back, exported, pruned to a retention period or cleared.

The journal stays where it is, private (0600), and is never sent anywhere. Pruning and clearing
rewrite it atomically (a new 0600 file renamed over the old one), so a crash leaves either the
old or the new journal, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from dictation.output.journal import FILE_MODE, JournalEntry, JournalError


def _lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from f
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"cannot read the transcript journal {path}: "
                           f"{exc.strerror or exc}") from exc


def read_entries(path: Path) -> list[JournalEntry]:
    """Every entry of the journal at ``path``, oldest first (lines that are not entries, such
    as one torn by a crash, are skipped)."""
    entries = []
    for line in _lines(path):
        if not line.strip():
            continue
        try:
            entries.append(JournalEntry.from_json(line))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def search(entries: Iterable[JournalEntry], words: str) -> list[JournalEntry]:
    """The entries whose text contains every word of ``words`` (case-insensitive)."""
    wanted = words.casefold().split()
    return [e for e in entries if all(w in e.text.casefold() for w in wanted)]


def entry_time(entry: JournalEntry) -> datetime | None:
    """The entry's time (aware), or None if it cannot be read."""
    try:
        when = datetime.fromisoformat(entry.time)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.astimezone()


def _rewrite(path: Path, entries: list[JournalEntry]) -> None:
    """Replace the journal at ``path`` by ``entries``, atomically, mode 0600."""
    fd, tmp = tempfile.mkstemp(prefix=".journal-", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(e.to_json() + "\n" for e in entries)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise JournalError(f"cannot rewrite the transcript journal {path}: "
                           f"{exc.strerror or exc}") from exc


def prune(path: Path, retention_days: float, now: datetime) -> int:
    """Drop the entries older than ``retention_days`` (0 keeps everything); returns how many
    were dropped. Entries whose time cannot be read are kept."""
    if retention_days <= 0 or not path.exists():
        return 0
    horizon = now - timedelta(days=retention_days)
    entries = read_entries(path)
    kept = [e for e in entries if (t := entry_time(e)) is None or t >= horizon]
    if len(kept) < len(entries):
        _rewrite(path, kept)
    return len(entries) - len(kept)


def clear(path: Path) -> int:
    """Empty the journal; returns how many entries it held."""
    if not path.exists():
        return 0
    n = len(read_entries(path))
    _rewrite(path, [])
    return n


def export(entries: Iterable[JournalEntry], target: Path) -> int:
    """Write ``entries`` to ``target`` as text, one ``time<TAB>text`` line each (JSON lines if
    the name ends in ``.jsonl``), mode 0600; returns how many."""
    entries = list(entries)
    if target.suffix == ".jsonl":
        body = "".join(e.to_json() + "\n" for e in entries)
    else:
        body = "".join(f"{e.time}\t{e.text}\n" for e in entries)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body)
    return len(entries)
