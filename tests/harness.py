"""The shared desktop harness (../shared/harness) for end-to-end tests.

``desktop_session()`` starts a throw-away X display with a tray host, a virtual microphone and a
focused text box, puts its variables (DISPLAY, PULSE_SERVER, E2E_*, ...) into ``os.environ``
for the duration, and always stops it. Tests use the ``desktop`` fixture::

    from harness import desktop  # noqa: F401  (registers the fixture)

    @pytest.mark.e2e
    def test_something(desktop: dict[str, str]) -> None: ...

The helpers below drive that session (they need ``os.environ`` set by ``desktop_session``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HARNESS_DIR = Path(os.environ.get("DICTATION_HARNESS_DIR",
                                  Path(__file__).resolve().parents[2] / "shared" / "harness"))
SESSION_SCRIPT = HARNESS_DIR / "desktop_session.sh"


def parse_exports(text: str) -> dict[str, str]:
    """Variables from ``export K=V`` lines (shell-quoted values, as ``printf %q`` writes)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


def _session(*args: str, timeout: float = 60.0) -> str:
    proc = subprocess.run([str(SESSION_SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())
    if proc.returncode != 0:
        raise RuntimeError(f"desktop_session.sh {' '.join(args)} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return proc.stdout


def harness_skip_reason() -> str | None:
    """Why the harness cannot run here (None: it can)."""
    if not SESSION_SCRIPT.is_file():
        return f"desktop harness not found at {SESSION_SCRIPT}"
    missing = [tool for tool in ("Xvfb", "xdotool", "openbox", "pulseaudio")
               if shutil.which(tool) is None]
    if missing:
        return (f"desktop harness needs {', '.join(missing)}: run "
                f"{SESSION_SCRIPT} install")
    return None


@contextmanager
def desktop_session(**knobs: str) -> Iterator[dict[str, str]]:
    """Start a harness desktop (``knobs`` such as ``E2E_AUDIO="0"`` go to ``start``), export its
    variables into ``os.environ``, yield them, and always stop it and restore the environment.
    Skips the calling test when the harness' programs are not installed."""
    reason = harness_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    saved = os.environ.copy()
    os.environ.update(knobs)
    os.environ.pop("E2E_SESSION_DIR", None)
    env: dict[str, str] = {}
    try:
        env = parse_exports(_session("start"))
        os.environ.update(env)
        yield env
    finally:
        if env.get("E2E_SESSION_DIR"):
            subprocess.run([str(SESSION_SCRIPT), "stop"], capture_output=True, timeout=30,
                           env={**os.environ, **env})
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def desktop() -> Iterator[dict[str, str]]:
    """A fresh harness desktop for one test (see :func:`desktop_session`)."""
    with desktop_session() as env:
        yield env


def harness_text() -> str:
    """What the focused text box holds now."""
    return _session("text")


def harness_play(wav: str | Path) -> None:
    """Play a WAV file into the virtual microphone; returns when it has played."""
    _session("play", str(wav), timeout=600.0)


def harness_clear() -> None:
    """Empty the text box (waits for its acknowledgement)."""
    _session("clear")


def harness_focus() -> None:
    """Give the text box keyboard focus again."""
    _session("focus")


def harness_screenshot(png: str | Path) -> None:
    """Save a screenshot of the whole virtual screen."""
    _session("screenshot", str(png))


def xdotool(*args: str) -> None:
    """Run xdotool on the harness display (inject keycodes, not key names: see the harness
    README)."""
    subprocess.run(["xdotool", *args], check=True, timeout=30, env=os.environ.copy())
