"""The control channel over real UNIX sockets in a temporary directory."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dictation.commands import Command
from dictation.control import (
    ControlServer,
    control_socket_path,
    ensure_private_dir,
    send_command,
)
from dictation.errors import DictationError


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return tmp_path / "dictation" / "control.sock"


class App:
    """Records the commands it gets, like the real app's handler would queue them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.running = False

    def handle(self, command: Command) -> str:
        self.commands.append(command)
        if command == "status":
            return "recording" if self.running else "idle"
        if command == "start" and self.running:
            raise DictationError("already recording")
        self.running = command == "start" or (command == "toggle" and not self.running)
        return "recording" if self.running else "idle"


@pytest.fixture
def served(sock_path: Path) -> Iterator[tuple[App, ControlServer]]:
    app = App()
    server = ControlServer(app.handle, sock_path)
    server.start()
    try:
        yield app, server
    finally:
        server.stop()


def test_commands_reach_the_handler_and_replies_come_back(
        served: tuple[App, ControlServer], sock_path: Path) -> None:
    app, _ = served
    assert send_command("status", path=sock_path) == "idle"
    assert send_command("toggle", path=sock_path) == "recording"
    assert send_command(" STOP\n", path=sock_path) == "idle"
    assert app.commands == ["status", "toggle", "stop"]


def test_handler_errors_reach_the_client(served: tuple[App, ControlServer],
                                         sock_path: Path) -> None:
    send_command("start", path=sock_path)
    with pytest.raises(DictationError, match="already recording"):
        send_command("start", path=sock_path)
    assert send_command("status", path=sock_path) == "recording"  # server still serving


def test_unexpected_handler_failure_is_reported_not_fatal(sock_path: Path) -> None:
    def broken(command: str) -> str:
        raise RuntimeError("boom")

    with ControlServer(broken, sock_path):
        with pytest.raises(DictationError, match="toggle failed inside the app.*boom"):
            send_command("toggle", path=sock_path)
        with pytest.raises(DictationError, match="boom"):
            send_command("toggle", path=sock_path)


def test_unknown_command_lists_the_known_ones(served: tuple[App, ControlServer],
                                              sock_path: Path) -> None:
    app, _ = served
    with pytest.raises(DictationError, match="unknown command 'dance'.*toggle, start, stop"):
        send_command("dance", path=sock_path)
    assert app.commands == []


def test_malformed_request_is_answered(served: tuple[App, ControlServer],
                                       sock_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(os.fspath(sock_path))
        s.sendall(b"toggle\n")  # not JSON
        assert b"malformed" in s.recv(4096)
    assert served[0].commands == []


def test_no_running_app_is_a_clear_error(sock_path: Path) -> None:
    with pytest.raises(DictationError, match="no dictation app is running.*start it with "
                                             "`dictation`"):
        send_command("toggle", path=sock_path)


def test_permissions_are_private(served: tuple[App, ControlServer], sock_path: Path) -> None:
    assert stat.S_IMODE(os.stat(sock_path.parent).st_mode) == 0o700
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    assert stat.S_IMODE(os.lstat(sock_path).st_mode) == 0o600


def test_stale_socket_is_replaced(sock_path: Path) -> None:
    ensure_private_dir(sock_path.parent)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(os.fspath(sock_path))  # a crashed app's socket: the file stays, nobody listens
    dead.close()
    assert sock_path.exists()
    with pytest.raises(DictationError, match="no dictation app is running"):
        send_command("status", path=sock_path)
    app = App()
    with ControlServer(app.handle, sock_path):
        assert send_command("status", path=sock_path) == "idle"


def test_second_instance_is_refused_and_the_first_keeps_serving(
        served: tuple[App, ControlServer], sock_path: Path) -> None:
    second = ControlServer(App().handle, sock_path)
    with pytest.raises(DictationError, match="already running"):
        second.start()
    second.stop()  # harmless after a failed start
    assert send_command("status", path=sock_path) == "idle"
    assert served[0].commands == ["status"]


def test_instance_without_the_lock_is_still_detected(sock_path: Path) -> None:
    """Something answers on the socket although nobody holds the lock (e.g. an older build)."""
    ensure_private_dir(sock_path.parent)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(os.fspath(sock_path))
        other.listen(1)
        with pytest.raises(DictationError, match="already running"):
            ControlServer(App().handle, sock_path).start()
    assert sock_path.exists()  # the other instance's socket was left alone


def test_stop_removes_the_socket_and_a_new_server_can_start(sock_path: Path) -> None:
    server = ControlServer(App().handle, sock_path)
    server.start()
    server.stop()
    server.stop()
    assert not sock_path.exists()
    with pytest.raises(DictationError, match="no dictation app is running"):
        send_command("status", path=sock_path)
    with ControlServer(App().handle, sock_path):
        assert send_command("status", path=sock_path) == "idle"


def test_a_silent_client_does_not_block_the_server(sock_path: Path) -> None:
    app = App()
    with (ControlServer(app.handle, sock_path, client_timeout_s=0.2),
          socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent):
        silent.connect(os.fspath(sock_path))  # connects, never writes
        assert send_command("status", timeout=10, path=sock_path) == "idle"


def test_a_hung_app_times_out(sock_path: Path) -> None:
    release = threading.Event()

    def hung(command: str) -> str:
        release.wait(10)
        return "late"

    with ControlServer(hung, sock_path):
        try:
            with pytest.raises(DictationError, match="did not answer 'status'"):
                send_command("status", timeout=0.3, path=sock_path)
        finally:
            release.set()


def test_non_socket_file_in_the_way_is_not_deleted(sock_path: Path) -> None:
    ensure_private_dir(sock_path.parent)
    sock_path.write_text("precious")
    with pytest.raises(DictationError, match="is not a socket"):
        ControlServer(App().handle, sock_path).start()
    assert sock_path.read_text() == "precious"


def test_private_dir_is_tightened_and_symlinks_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    ensure_private_dir(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(loose)
    with pytest.raises(DictationError, match="symlink"):
        ensure_private_dir(link)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to create another user's directory")
def test_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 12345, 12345)
    with pytest.raises(DictationError, match="another user"):
        ensure_private_dir(foreign)


def test_too_long_path_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120) / "control.sock"
    with pytest.raises(DictationError, match="longer than"):
        ControlServer(App().handle, deep).start()


def test_default_path_uses_xdg_runtime_dir(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert control_socket_path() == tmp_path / "dictation" / "control.sock"


def test_default_path_falls_back_to_a_per_user_tmp_dir(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = control_socket_path()
    assert path == tmp_path / f"dictation-{os.getuid()}" / "control.sock"
    with ControlServer(App().handle):
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert send_command("status") == "idle"

