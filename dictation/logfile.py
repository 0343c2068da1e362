"""The app's log file: ``$XDG_STATE_HOME/dictation/log`` (default ``~/.local/state``),
rotated at :data:`MAX_BYTES` with :data:`BACKUPS` old files, readable by the user only (the
log may quote dictated text in error messages). Started from a desktop launcher the app has
no terminal, so this file is where its messages go."""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections.abc import Mapping
from pathlib import Path

MAX_BYTES = 1_000_000
"""Size (bytes) at which the log file is rotated."""
BACKUPS = 3
"""Rotated files kept (``log.1`` ... ``log.3``)."""
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/dictation/log``; a relative or empty XDG_STATE_HOME is ignored."""
    env = os.environ if env is None else env
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "dictation" / "log"


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files (also those made by rotation) are mode 0600."""

    def _open(self):  # type: ignore[no-untyped-def]  # typeshed: returns a TextIO
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o777 != 0o600:
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def add_log_file(logger: logging.Logger | None = None,
                 path: Path | None = None) -> Path | None:
    """Send ``logger``'s records (default: the root logger) to the private, rotated log file
    too. Returns its path, or None when it cannot be created (reported on the logger)."""
    logger = logger or logging.getLogger()
    path = path or log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        handler = PrivateRotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                             encoding="utf-8")
    except OSError as exc:
        logger.warning("cannot write the log file %s: %s", path, exc)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    return path
