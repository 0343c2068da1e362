"""The Command enum, its handler table, and the light control commands of the CLI (run in a
child process, so that what they import is seen on a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dictation.commands import (
    CONTROL_COMMANDS,
    CONTROL_HELP,
    HANDLERS,
    Command,
    Request,
    Trigger,
    dispatch,
    parse_control_command,
)
from dictation.control import ControlServer

REPO = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("torch", "numpy", "scipy", "transformers", "huggingface_hub", "sounddevice",
                 "pynput", "PIL", "pystray", "soundfile")


class Handlers:
    """A CommandHandlers that records what it was asked to do."""

    def __init__(self, listening: bool = False) -> None:
        self.listening = listening
        self.calls: list[tuple[str, str | None]] = []

    def start_dictation(self, trigger: Trigger | None) -> None:
        self.calls.append(("start", None if trigger is None else repr(trigger)))

    def stop_dictation(self, trigger: Trigger | None) -> None:
        self.calls.append(("stop", None if trigger is None else repr(trigger)))

    def quit(self) -> None:
        self.calls.append(("quit", None))

    def select_model(self, name: str) -> None:
        self.calls.append(("model", name))

    def select_microphone(self, name: str | None) -> None:
        self.calls.append(("mic", name))

    def copy_last(self) -> None:
        self.calls.append(("copy", None))

    def open_settings(self) -> None:
        self.calls.append(("settings", None))


def test_every_worker_command_has_a_handler_and_status_is_answered_by_the_socket() -> None:
    assert set(HANDLERS) == set(Command) - {Command.STATUS}
    assert set(CONTROL_HELP) == set(CONTROL_COMMANDS)
    with pytest.raises(KeyError):
        dispatch(Handlers(), Request(Command.STATUS))


def test_dispatch_calls_the_matching_handler() -> None:
    h = Handlers()
    for request in (Request(Command.START), Request(Command.STOP), Request(Command.QUIT),
                    Request(Command.SELECT_MODEL, "base"), Request(Command.SELECT_MIC, None),
                    Request(Command.SELECT_MIC, "pulse"), Request(Command.COPY_LAST),
                    Request(Command.OPEN_SETTINGS)):
        dispatch(h, request)
    assert h.calls == [("start", None), ("stop", None), ("quit", None), ("model", "base"),
                       ("mic", None), ("mic", "pulse"), ("copy", None), ("settings", None)]
    with pytest.raises(ValueError, match="model name"):
        dispatch(h, Request(Command.SELECT_MODEL))


def test_the_trigger_travels_with_start_and_stop() -> None:
    h = Handlers()
    at = Trigger(12.5, None)
    dispatch(h, Request(Command.START, trigger=at))
    dispatch(h, Request(Command.STOP, trigger=at))
    assert h.calls == [("start", "Trigger(12.5, None)"), ("stop", "Trigger(12.5, None)")]
    assert Request(Command.START, trigger=at) == Request(Command.START, trigger=Trigger(12.5, None))
    assert Request(Command.START, trigger=at) != Request(Command.START)


def test_toggle_follows_the_listening_state() -> None:
    idle, busy = Handlers(listening=False), Handlers(listening=True)
    dispatch(idle, Request(Command.TOGGLE))
    dispatch(busy, Request(Command.TOGGLE))
    assert idle.calls == [("start", None)] and busy.calls == [("stop", None)]


def test_control_text_is_parsed_once_at_the_edge() -> None:
    assert parse_control_command(" Toggle\n", CONTROL_COMMANDS) is Command.TOGGLE
    with pytest.raises(ValueError, match="unknown command 'quit'; use one of: toggle, start"):
        parse_control_command("quit", CONTROL_COMMANDS)
    with pytest.raises(ValueError, match="unknown command 'dance'"):
        parse_control_command("dance", CONTROL_COMMANDS)


WRAPPER = """
import json, sys
from dictation.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run_cli(runtime_dir: Path, *args: str) -> tuple[dict[str, object], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_RUNTIME_DIR": str(runtime_dir)}
    out = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True,
                         text=True, timeout=60, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1]) + out.stderr


@pytest.mark.parametrize("command", [c.value for c in CONTROL_COMMANDS])
def test_control_commands_import_nothing_heavy_without_an_app(tmp_path: Path,
                                                              command: str) -> None:
    result, output = _run_cli(tmp_path, command)
    assert result["code"] == 2 and "no dictation app is running" in output
    modules = result["modules"]
    assert isinstance(modules, list)
    heavy = [m for m in modules if m.split(".")[0] in HEAVY_MODULES]
    assert heavy == [], f"`dictation {command}` imported {heavy[:10]}"
    assert "dictation.bench" not in modules and "dictation.config" not in modules


def test_control_commands_import_nothing_heavy_with_an_app(tmp_path: Path) -> None:
    """A control server in this process stands in for the running app's (same class)."""
    asked: list[Command] = []

    def handler(command: Command) -> str:
        asked.append(command)
        return "idle model=tiny.en mic=default"

    with ControlServer(handler, tmp_path / "dictation" / "control.sock"):
        result, output = _run_cli(tmp_path, "status")
    assert result["code"] == 0 and output.strip() == "idle model=tiny.en mic=default"
    assert asked == [Command.STATUS]
    modules = result["modules"]
    assert isinstance(modules, list)
    assert not [m for m in modules if m.split(".")[0] in HEAVY_MODULES]
