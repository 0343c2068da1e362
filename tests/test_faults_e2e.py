"""Start-up faults reach the user without a terminal: a config error is a desktop
notification (read back from the harness' dunst), and the app writes a private, rotated log
file in ``$XDG_STATE_HOME/dictation``."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import desktop_session

from dictation.logfile import PrivateRotatingFileHandler, add_log_file, log_path

REPO = Path(__file__).resolve().parents[1]


def test_log_file_is_private_and_rotated(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dictation" / "log"
    logger = logging.getLogger("test-logfile")
    logger.propagate = False
    assert add_log_file(logger, path) == path
    logger.warning("first")
    handler = logger.handlers[-1]
    assert isinstance(handler, PrivateRotatingFileHandler)
    handler.maxBytes = 200  # rotate soon
    for i in range(20):
        logger.warning("line %d %s", i, "x" * 40)
    handler.close()
    logger.removeHandler(handler)
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["log", "log.1", "log.2", "log.3"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert "line 19" in path.read_text()
    assert log_path({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "dictation" / "log"
    assert log_path({"XDG_STATE_HOME": "relative"}).parts[-4:] == (
        ".local", "state", "dictation", "log")


@pytest.mark.e2e
def test_config_error_at_start_up_is_a_notification_and_in_the_log(tmp_path: Path) -> None:
    if shutil.which("dunstctl") is None:
        pytest.skip("dunstctl (dunst >= 1.5) is needed to read notifications back")
    config = tmp_path / "config" / "dictation" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[hotkey]\nkey = "banana"\n', encoding="utf-8")
    with desktop_session(E2E_TRAY="0", E2E_AUDIO="0") as desk:
        env = {**os.environ, **desk, "PYTHONPATH": str(REPO),
               "XDG_CONFIG_HOME": str(tmp_path / "config"),
               "XDG_STATE_HOME": str(tmp_path / "state"),
               "XDG_RUNTIME_DIR": str(tmp_path / "run")}
        (tmp_path / "run").mkdir(mode=0o700)
        done = subprocess.run([sys.executable, "-m", "dictation", "listen"], env=env,
                              capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode != 0 and "banana" in done.stderr
        deadline = time.monotonic() + 10
        seen = ""
        while "banana" not in seen and time.monotonic() < deadline:
            seen = subprocess.run(["dunstctl", "history"], capture_output=True, text=True,
                                  env=env, timeout=10).stdout
            if "banana" not in seen:  # still on screen: not in history yet
                subprocess.run(["dunstctl", "close-all"], env=env, timeout=10)
                time.sleep(0.1)
        assert "banana" in seen and "did not start" in seen
    log = tmp_path / "state" / "dictation" / "log"
    assert "banana" in log.read_text() and log.stat().st_mode & 0o777 == 0o600
