"""The transcript journal: every recognised segment, appended to a private JSON-lines file.

One line per segment: ``{"time": ISO 8601 with UTC offset, "session": id, "text": ...,
"window_class": target window class or null, "typed": true if it was typed, false if it was
held back}``. The directory is created ``0o700`` and the file ``0o600``; every append is
fsync'd, so a crash loses at most the line being written (a torn last line is skipped when
reading). If the file cannot be written, the entry stays in memory, :class:`JournalError`
says why, and the next append retries writing it first, so nothing dictated is lost while
the app runs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from dictation.errors import DictationError

FILE_MODE = 0o600
DIR_MODE = 0o700
_READ_BLOCK = 64 * 1024  # bytes read at a time from the end of the file
LAST_TEXT_MAX_SEGMENTS = 256
"""Most segments :meth:`TranscriptJournal.last_text` joins."""


class JournalError(DictationError):
    """The journal file cannot be written or read; the message names the path and the fix."""


@dataclass(frozen=True)
class JournalEntry:
    """One recognised segment. ``time`` is ISO 8601 local time with its UTC offset."""

    time: str
    session: str
    text: str
    window_class: str | None
    typed: bool

    def to_json(self) -> str:
        """This entry as one JSON line (no trailing newline; non-ASCII kept as is)."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> JournalEntry:
        """Parse a line written by :meth:`to_json`; raises ValueError (or KeyError/TypeError)
        on anything else."""
        raw = json.loads(line)
        window_class = raw["window_class"]
        if not (
            isinstance(raw["time"], str)
            and isinstance(raw["session"], str)
            and isinstance(raw["text"], str)
            and (window_class is None or isinstance(window_class, str))
            and isinstance(raw["typed"], bool)
        ):
            raise ValueError(f"not a journal entry: {line!r}")
        return cls(raw["time"], raw["session"], raw["text"], window_class, raw["typed"])


def _local_now() -> datetime:
    return datetime.now().astimezone()


def new_session_id() -> str:
    """A short random id that groups the entries of one dictation (double tap to stop)."""
    return uuid.uuid4().hex[:12]


class TranscriptJournal:
    """Append-only JSON-lines journal at ``path`` (see the module docstring).

    ``session_id`` tags the entries of the current dictation (default: random;
    :meth:`new_session` starts the next); ``now`` gives the entry time (an aware datetime;
    injectable for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        session_id: str | None = None,
        now: Callable[[], datetime] = _local_now,
    ) -> None:
        self.path = Path(path)
        self.session_id = session_id or new_session_id()
        self._now = now
        self._unsaved: list[JournalEntry] = []

    def new_session(self) -> str:
        """A new dictation begins: its entries get a new session id (returned)."""
        self.session_id = new_session_id()
        return self.session_id

    @property
    def unsaved(self) -> list[JournalEntry]:
        """Entries recorded in memory that could not be written to the file yet, oldest first."""
        return list(self._unsaved)

    def _prepare_dir(self) -> None:
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, DIR_MODE)  # mkdir's mode is masked by the umask

    def _open(self) -> int:
        self._prepare_dir()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
                os.fchmod(fd, FILE_MODE)  # created under a umask, or loosened by someone
        except OSError:
            os.close(fd)
            raise
        return fd

    def _write(self, entries: list[JournalEntry]) -> None:
        data = "".join(entry.to_json() + "\n" for entry in entries).encode("utf-8")
        fd = self._open()
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a line torn by a crash, so ours stays readable
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _error(self, exc: OSError) -> JournalError:
        kept = (
            f" {len(self._unsaved)} segment(s) are kept in memory until it works."
            if self._unsaved
            else ""
        )
        return JournalError(
            f"cannot write the transcript journal {self.path}: {exc.strerror or exc}.{kept} "
            "Make its directory writable, or set another journal path in the configuration"
        )

    def ensure_writable(self) -> None:
        """Create the directory and file (private) now, so a bad path shows at start-up;
        raises :class:`JournalError`."""
        try:
            os.close(self._open())
        except OSError as exc:
            raise self._error(exc) from exc

    def append(self, text: str, *, window_class: str | None, typed: bool) -> JournalEntry:
        """Record a segment's ``text``: ``window_class`` of the window it was meant for,
        ``typed`` False if it was held back. Returns the entry. Raises :class:`JournalError`
        if the file cannot be written; the entry is then kept in memory (see
        :attr:`unsaved`) and written by a later append."""
        entry = JournalEntry(
            self._now().isoformat(timespec="milliseconds"),
            self.session_id,
            text,
            window_class,
            typed,
        )
        self._unsaved.append(entry)
        try:
            self._write(self._unsaved)
        except OSError as exc:
            raise self._error(exc) from exc
        self._unsaved.clear()
        return entry

    def _read_tail_lines(self, n: int) -> list[str]:
        """The last ``n`` complete lines of the file (fewer if it is shorter)."""
        try:
            with open(self.path, "rb") as f:
                end = f.seek(0, os.SEEK_END)
                position, data = end, b""
                while position > 0 and data.count(b"\n") <= n:
                    step = min(_READ_BLOCK, position)
                    position -= step
                    f.seek(position)
                    data = f.read(step) + data
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise JournalError(
                f"cannot read the transcript journal {self.path}: {exc.strerror or exc}"
            ) from exc
        lines = data.split(b"\n")
        if position > 0:
            lines = lines[1:]  # the first piece may be the end of an earlier line
        return [line.decode("utf-8", "replace") for line in lines if line.strip()][-n:]

    def read_recent(self, n: int) -> list[JournalEntry]:
        """The last ``n`` entries, oldest first: those in the file, then unsaved ones. Lines
        that are not entries (a torn last write) are skipped."""
        if n <= 0:
            return []
        entries: list[JournalEntry] = []
        missing = n - len(self._unsaved)
        want = missing
        while missing > 0:
            try:
                lines = self._read_tail_lines(want)
            except JournalError:
                if not self._unsaved:
                    raise
                break
            entries = []
            for line in lines:
                try:
                    entries.append(JournalEntry.from_json(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash, or not ours
            if len(entries) >= missing or len(lines) < want:
                break
            want *= 2
        return (entries + self._unsaved)[-n:]

    def last_text(self) -> str | None:
        """The text of the newest dictation (its segments' texts, one space apart), or None if
        the journal is empty. At most :data:`LAST_TEXT_MAX_SEGMENTS` segments (a journal of an
        older version has one session per app run, not per dictation)."""
        n = 16
        while True:
            recent = self.read_recent(n)
            if not recent:
                return None
            session = recent[-1].session
            first = len(recent)
            while first > 0 and recent[first - 1].session == session:
                first -= 1
            if first > 0 or len(recent) < n or n >= LAST_TEXT_MAX_SEGMENTS:
                return " ".join(entry.text for entry in recent[first:])
            n = min(4 * n, LAST_TEXT_MAX_SEGMENTS)
