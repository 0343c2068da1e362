"""Local control channel: ``dictation toggle|start|stop|status`` (or a desktop shortcut bound to
it, the hotkey route on Wayland) drives the running app over a UNIX socket.

The socket is ``$XDG_RUNTIME_DIR/dictation/control.sock`` (without XDG_RUNTIME_DIR:
``/tmp/dictation-<uid>/control.sock``), in a directory of mode 0o700, socket mode 0o600, and
only peers of the same user are served. One app instance holds an exclusive lock on
``control.lock`` beside it for as long as it runs, so a second instance is refused and a socket
file left by a crashed one is known to be stale and replaced.

Protocol: one request per connection, one JSON line each way:
``{"command": "toggle"}`` -> ``{"ok": true, "reply": "..."}`` or
``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from dictation.commands import (
    CONTROL_COMMANDS,
    TYPE_CHECKING,
    Command,
    parse_control_command,
)
from dictation.errors import DictationError

if TYPE_CHECKING:
    import logging
    import threading
    from typing import IO


def _log() -> logging.Logger:
    """This module's logger. logging, threading and selectors are imported by the server only:
    ``dictation toggle`` (the client) starts in about half the time without them."""
    import logging

    return logging.getLogger(__name__)


MAX_MESSAGE_BYTES = 65536
_SUN_PATH_MAX = 107 if sys.platform.startswith("linux") else 103  # bytes, without the NUL


def control_dir() -> Path:
    """The private directory of the control socket (not created)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(runtime) and os.path.isdir(runtime):
        return Path(runtime) / "dictation"
    import tempfile  # rarely needed, and it imports shutil, random, hashlib...

    return Path(tempfile.gettempdir()) / f"dictation-{os.getuid()}"


def control_socket_path() -> Path:
    """Where the running app listens."""
    return control_dir() / "control.sock"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0o700 (or tighten it to 0o700 if it is ours); refuse a symlink,
    a non-directory, or a directory of another user (someone could read the socket)."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise DictationError(f"cannot create the control directory {path}: {exc.strerror}") \
            from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise DictationError(f"{path} is not a directory (or is a symlink); remove it so the app "
                             "can create its private control directory")
    if st.st_uid != os.getuid():
        raise DictationError(f"{path} belongs to another user (uid {st.st_uid}); remove it or set "
                             "XDG_RUNTIME_DIR to a private directory")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _check_path_length(path: Path) -> None:
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise DictationError(f"control socket path {path} is longer than the {_SUN_PATH_MAX} "
                             "bytes a UNIX socket allows; set XDG_RUNTIME_DIR to a shorter "
                             "directory")


def _require_unix_sockets() -> None:
    if not hasattr(socket, "AF_UNIX"):
        raise DictationError("the control channel needs UNIX sockets, which this platform's "
                             "Python lacks; use the tray icon or the hotkey instead")


def _answers(path: Path, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on the socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def _already_running(path: Path) -> DictationError:
    return DictationError(f"dictation is already running (its control socket {path} is in "
                          "use); drive it with `dictation toggle|start|stop|status` instead of "
                          "starting a second one")


class ControlServer:
    """Serves control commands on a thread, calling ``handler(command) -> reply`` for each
    (``command`` one of ``commands``, parsed from the wire text).

    ``handler`` runs on the server thread, one request at a time: keep it quick (queue the
    work). A :class:`DictationError` it raises is sent to the client as the error message.
    """

    def __init__(self, handler: Callable[[Command], str], path: Path | None = None,
                 commands: tuple[Command, ...] = CONTROL_COMMANDS,
                 client_timeout_s: float = 1.0) -> None:
        self.path = path if path is not None else control_socket_path()
        self.commands = commands
        self._handler = handler
        self._client_timeout_s = client_timeout_s
        self._lock_file: IO[bytes] | None = None
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket and start serving; raises :class:`DictationError` when another
        instance runs or the socket cannot be created."""
        _require_unix_sockets()
        _check_path_length(self.path)
        ensure_private_dir(self.path.parent)
        self._lock_file = self._take_lock()
        try:
            self._sock = self._bind()
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self._close()
            raise
        import threading

        self._thread = threading.Thread(target=self._serve, name="control-server", daemon=True)
        self._thread.start()
        _log().info("control socket listening on %s", self.path)

    def stop(self) -> None:
        """Stop serving and remove the socket (idempotent)."""
        if self._thread is not None and self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
            import threading

            if self._thread is not threading.current_thread():
                self._thread.join(timeout=5)
        self._thread = None
        self._close()

    def __enter__(self) -> ControlServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- setup ----------------------------------------------------------------------------
    def _take_lock(self) -> IO[bytes]:
        import fcntl  # POSIX only, like AF_UNIX

        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        lock_file = os.fdopen(fd, "r+b")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise _already_running(self.path) from None
        return lock_file

    def _bind(self) -> socket.socket:
        """(Lock held, so no other instance serves here.) Replace a stale socket and bind."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode):
                raise DictationError(f"{self.path} exists and is not a socket; remove it")
            if _answers(self.path):  # an instance that does not take the lock
                raise _already_running(self.path)
            _log().info("replacing stale control socket %s", self.path)
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(self.path))
            os.chmod(self.path, 0o600)
            self._inode = os.lstat(self.path).st_ino
            sock.listen(8)
        except OSError as exc:
            sock.close()
            raise DictationError(f"cannot listen on {self.path}: {exc.strerror}") from None
        return sock

    def _close(self) -> None:
        for s in (self._sock, self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._sock = self._wake_r = self._wake_w = None
        if self._inode is not None:
            with contextlib.suppress(OSError):  # only our socket, not a successor's
                if os.lstat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            self._inode = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    # --- server thread --------------------------------------------------------------------
    def _serve(self) -> None:
        assert self._sock is not None and self._wake_r is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                try:
                    ready = [key.fileobj for key, _ in selector.select()]
                except (OSError, ValueError):  # closed under us: stop() from the handler
                    return
                if self._wake_r in ready:
                    return
                try:
                    conn, _ = self._sock.accept()
                except OSError:
                    continue
                with conn:
                    try:
                        self._serve_one(conn)
                    except OSError as exc:  # client went away or timed out
                        _log().debug("control client failed: %s", exc)

    def _serve_one(self, conn: socket.socket) -> None:
        conn.settimeout(self._client_timeout_s)
        if not _same_user(conn):
            _send(conn, {"ok": False, "error": "refused: the app belongs to another user"})
            return
        try:
            request = json.loads(_read_line(conn))
            text = request["command"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            _send(conn, {"ok": False, "error": "malformed control request"})
            return
        try:
            command = parse_control_command(text, self.commands)
        except ValueError as exc:
            _send(conn, {"ok": False, "error": str(exc)})
            return
        try:
            reply = self._handler(command)
        except DictationError as exc:
            _send(conn, {"ok": False, "error": str(exc)})
            return
        except Exception as exc:
            _log().exception("control command %r failed", command.value)
            _send(conn, {"ok": False, "error": f"{command.value} failed inside the app: "
                                               f"{exc!r}; see its log"})
            return
        _send(conn, {"ok": True, "reply": str(reply)})


def _same_user(conn: socket.socket) -> bool:
    """Whether the peer runs as our user (Linux SO_PEERCRED; elsewhere the 0o700 directory
    is the guard)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while b"\n" not in data and len(data) < MAX_MESSAGE_BYTES:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def _send(conn: socket.socket, message: dict[str, object]) -> None:
    conn.sendall(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")


def send_command(command: Command | str, timeout: float = 2.0, path: Path | None = None) -> str:
    """Send ``command`` to the running app and return its reply; raises
    :class:`DictationError` when no app runs, it does not answer, or it reports an error."""
    _require_unix_sockets()
    path = path if path is not None else control_socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise DictationError(f"no dictation app is running (nothing answers on {path}); "
                                 "start it with `dictation`") from None
        except PermissionError:
            raise DictationError(f"not allowed to use {path}: the running app belongs to "
                                 "another user") from None
        except TimeoutError:
            raise DictationError(f"the dictation app did not accept a connection on {path} "
                                 f"within {timeout:g} s; it may be hung") from None
        try:
            _send(sock, {"command": str(command)})
            raw = _read_line(sock)
        except TimeoutError:
            raise DictationError(f"the dictation app did not answer {str(command)!r} within "
                                 f"{timeout:g} s; it may be busy or hung") from None
        except OSError as exc:
            raise DictationError(f"the dictation app closed the connection ({exc.strerror}); "
                                 "it may be shutting down") from None
    try:
        answer = json.loads(raw)
        ok = answer["ok"]
        text = answer["reply"] if ok else answer["error"]
    except (ValueError, KeyError, TypeError):
        raise DictationError(f"unreadable answer from the dictation app on {path}: "
                             f"{raw[:200]!r}") from None
    if not ok:
        raise DictationError(str(text))
    return str(text)
