"""`dictation doctor` on the harness desktop: every check passes with real speech playing into
the virtual microphone (the level is reported), and a missing sound server is a FAIL line with
the fix and a non-zero exit code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SESSION_SCRIPT, desktop_session

from dictation.doctor import Result

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
JFK = REPO.parent / "shared" / "data" / "dev" / "wav" / "whisper-jfk.wav"


@pytest.fixture(scope="module")
def desk() -> Iterator[dict[str, str]]:
    with desktop_session(E2E_TRAY="0") as env:
        yield env


def doctor(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    return subprocess.run([sys.executable, "-m", "dictation", "doctor"], env=env,
                          capture_output=True, text=True, timeout=300, cwd=REPO)


def test_doctor_passes_on_a_working_desktop(desk: dict[str, str], tmp_path: Path) -> None:
    player = subprocess.Popen([str(SESSION_SCRIPT), "play", str(JFK)], env=os.environ.copy())
    try:
        done = doctor(desk, tmp_path)
    finally:
        player.wait(timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("config", "display", "hotkey", "microphone", "typing", "vad", "model"):
        assert any(re.match(rf"PASS {name}: ", line) for line in lines), done.stdout
    level = re.search(r"level (-?\d+) dBFS", done.stdout)
    assert level is not None and -60 < int(level.group(1)) < 0, done.stdout
    assert "read back exactly" in done.stdout


def test_doctor_fails_with_the_fix_without_a_sound_server(desk: dict[str, str],
                                                          tmp_path: Path) -> None:
    done = doctor({**desk, "PULSE_SERVER": f"unix:{tmp_path}/none"}, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^FAIL microphone: .*\n     fix: .*sound server", done.stdout, re.M), \
        done.stdout
    assert "checks passed" in done.stdout.splitlines()[-1]


def test_result_lines_show_the_fix_only_for_failures() -> None:
    assert Result("vad", "PASS", "ok").line() == "PASS vad: ok"
    assert Result("model", "FAIL", "bad", "do this").line() == (
        "FAIL model: bad\n     fix: do this")
