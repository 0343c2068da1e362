"""TranscriptJournal on the real file system: format, private permissions, fsync'd appends,
reading back, torn lines, and an unwritable path that loses nothing."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dictation.output.journal import JournalEntry, JournalError, TranscriptJournal

FIXED_TIME = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask of 0, so only the journal's own modes can make its files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_append_writes_one_json_line_per_segment(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = TranscriptJournal(path, session_id="s1", now=lambda: FIXED_TIME)
    first = journal.append("Grüße aus 日本 ✓", window_class="XTerm", typed=True)
    journal.append("held back", window_class=None, typed=False)
    lines = path.read_text("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "time": "2024-05-17T09:30:15.123+02:00",
            "session": "s1",
            "text": "Grüße aus 日本 ✓",
            "window_class": "XTerm",
            "typed": True,
        },
        {
            "time": "2024-05-17T09:30:15.123+02:00",
            "session": "s1",
            "text": "held back",
            "window_class": None,
            "typed": False,
        },
    ]
    assert "日本" in lines[0]  # readable UTF-8, not \\u escapes
    assert first == JournalEntry(
        "2024-05-17T09:30:15.123+02:00", "s1", "Grüße aus 日本 ✓", "XTerm", True
    )


def test_default_time_is_iso8601_with_offset(tmp_path: Path) -> None:
    journal = TranscriptJournal(tmp_path / "j.jsonl")
    entry = journal.append("x", window_class=None, typed=True)
    stamp = datetime.fromisoformat(entry.time)
    assert stamp.tzinfo is not None
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 3600
    assert len(journal.session_id) == 12


def test_private_permissions_under_open_umask(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state" / "dictation" / "journal.jsonl"
    TranscriptJournal(path).append("secret", window_class=None, typed=True)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_existing_loose_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("")
    path.chmod(0o644)
    TranscriptJournal(path).append("secret", window_class=None, typed=True)
    assert mode(path) == 0o600


def test_existing_directory_is_left_alone(tmp_path: Path) -> None:
    """The journal may live in a shared directory the user chose; only the file is private."""
    tmp_path.chmod(0o755)
    TranscriptJournal(tmp_path / "journal.jsonl").ensure_writable()
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "journal.jsonl") == 0o600


def test_every_append_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    journal = TranscriptJournal(path)
    journal.append("one", window_class=None, typed=True)
    journal.append("two", window_class=None, typed=True)
    assert len(synced) == 2
    assert synced[1] == path.stat().st_size  # synced after the whole line was written


def test_read_recent_and_last_text(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    assert TranscriptJournal(path).last_text() is None
    assert TranscriptJournal(path).read_recent(5) == []
    earlier = TranscriptJournal(path, session_id="earlier")
    for i in range(3):
        earlier.append(f"old {i}", window_class="Gedit", typed=True)
    now = TranscriptJournal(path, session_id="now")
    now.append("new ✓", window_class="XTerm", typed=False)
    recent = now.read_recent(2)
    assert [(e.session, e.text, e.typed) for e in recent] == [
        ("earlier", "old 2", True),
        ("now", "new ✓", False),
    ]
    assert [e.text for e in now.read_recent(100)] == ["old 0", "old 1", "old 2", "new ✓"]
    assert now.read_recent(0) == []
    assert now.last_text() == "new ✓"
    now.new_session()  # the next dictation
    now.append("Ask not.", window_class="XTerm", typed=True)
    now.append("What your country.", window_class="XTerm", typed=False)
    assert now.last_text() == "Ask not. What your country."  # the whole last dictation


def test_read_recent_from_a_large_journal(tmp_path: Path) -> None:
    """The tail is read backwards in blocks; entries straddling block edges parse."""
    path = tmp_path / "journal.jsonl"
    journal = TranscriptJournal(path)
    texts = [f"segment {i} " + "ü" * (i % 97) for i in range(3000)]
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            entry = JournalEntry("2024-01-01T00:00:00.000+00:00", "bulk", text, None, True)
            f.write(entry.to_json() + "\n")
    assert path.stat().st_size > 3 * 64 * 1024
    assert [e.text for e in journal.read_recent(1500)] == texts[-1500:]
    assert journal.last_text() == " ".join(texts[-256:])  # one session: the newest 256


def test_torn_last_line_is_skipped_and_does_not_swallow_the_next(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = TranscriptJournal(path)
    journal.append("complete", window_class=None, typed=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"time": "2024-05-17T09:3')  # a crash in the middle of a write
    assert [e.text for e in journal.read_recent(5)] == ["complete"]
    journal.append("after the crash", window_class=None, typed=True)
    assert [e.text for e in journal.read_recent(2)] == ["complete", "after the crash"]


def test_unwritable_path_raises_and_keeps_text_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the journal directory should be")
    path = blocker / "journal.jsonl"
    journal = TranscriptJournal(path)
    with pytest.raises(JournalError, match=f"cannot write the transcript journal {path}"):
        journal.ensure_writable()
    with pytest.raises(JournalError, match="1 segment.*kept in memory.*journal path"):
        journal.append("first words", window_class="XTerm", typed=True)
    with pytest.raises(JournalError, match="2 segment"):
        journal.append("second words", window_class="XTerm", typed=False)
    assert [e.text for e in journal.unsaved] == ["first words", "second words"]
    assert journal.last_text() == "first words second words"  # one dictation
    assert [e.text for e in journal.read_recent(5)] == ["first words", "second words"]

    blocker.unlink()  # the user fixes the path: the next append writes everything, in order
    journal.append("third words", window_class=None, typed=True)
    assert journal.unsaved == []
    lines = path.read_text("utf-8").splitlines()
    assert [json.loads(line)["text"] for line in lines] == [
        "first words",
        "second words",
        "third words",
    ]


def test_unreadable_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(JournalError, match="cannot read the transcript journal"):
        TranscriptJournal(path).read_recent(3)
