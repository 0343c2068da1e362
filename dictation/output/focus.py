"""Which window has the keyboard focus, and whether it is still the one dictation started in.

:func:`focused_window` picks the source for the session (:mod:`dictation.session`):

* X11: the X server (``_NET_ACTIVE_WINDOW`` of the window manager, else the input focus),
  walking to the top-level client window that carries ``WM_CLASS``;
* sway and i3 on Wayland: the compositor's IPC socket (``SWAYSOCK`` / ``I3SOCK``),
  ``GET_TREE``, the focused node: its con id, ``app_id`` (or the X11 class of an Xwayland
  window) and pid (:func:`sway_focused_window`);
* Hyprland: ``hyprctl activewindow -j`` (:func:`hyprland_focused_window`).

Elsewhere (GNOME and KDE on Wayland, macOS, Windows) it returns None: focus is unknown, and a
:class:`FocusLatch` then never reports a change (the app says so in its status and log).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window


@dataclass(frozen=True)
class WindowInfo:
    """A top-level window: X id (sway con id, Hyprland address), the class part of
    ``WM_CLASS`` (e.g. ``XTerm``; a Wayland app_id such as ``foot``), title, client pid."""

    id: int
    wm_class: str
    title: str
    pid: int | None = None


def is_terminal(window_class: str, terminal_classes: Iterable[str]) -> bool:
    """Whether ``window_class`` is one of ``terminal_classes`` (compared case-insensitively):
    terminals paste with Ctrl+Shift+V."""
    wanted = window_class.casefold()
    return any(wanted == name.casefold() for name in terminal_classes)


_SEARCH_LIMIT = 64
"""Most windows examined below a window manager frame when looking for its client."""


def _has_class(window: Window) -> bool:
    return window.get_wm_class() is not None


def _client_window(window: Window, root_id: int) -> Window | None:
    """The window with ``WM_CLASS`` at or above ``window`` (a widget inside an application),
    else below it (a window manager frame around the application)."""
    current = window
    while current.id != root_id:
        if _has_class(current):
            return current
        parent = current.query_tree().parent
        if not parent:
            break
        current = parent
    queue: deque[Window] = deque(window.query_tree().children)
    for _ in range(_SEARCH_LIMIT):
        if not queue:
            break
        child = queue.popleft()
        if _has_class(child):
            return child
        queue.extend(child.query_tree().children)
    return None


def _title(disp: Display, window: Window) -> str:
    net_name = window.get_full_property(
        disp.intern_atom("_NET_WM_NAME"), disp.intern_atom("UTF8_STRING")
    )
    if net_name is not None and net_name.value:
        value = net_name.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    name = window.get_wm_name()
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return name or ""


def window_with_focus(disp: Display) -> WindowInfo | None:
    """The focused top-level window on the X connection ``disp``, or None (no window has the
    focus, or it vanished while being looked at)."""
    from Xlib import X
    from Xlib import error as xerror

    root = disp.screen().root
    try:
        active = root.get_full_property(disp.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        window: Window | None = None
        if active is not None and len(active.value) and active.value[0]:
            window = disp.create_resource_object("window", int(active.value[0]))
        else:
            focus = disp.get_input_focus().focus
            if not isinstance(focus, int):  # X.NONE and X.PointerRoot come back as ints
                window = focus
        if window is None or window.id == root.id:
            return None
        client = _client_window(window, root.id)
        if client is None:
            return None
        wm_class = client.get_wm_class()
        return WindowInfo(client.id, wm_class[1] if wm_class else "", _title(disp, client))
    except xerror.XError:  # e.g. BadWindow: the window closed while we looked
        return None


def focused_window(env: Mapping[str, str] | None = None) -> WindowInfo | None:
    """The focused top-level window of the X11 display in ``env`` (default: this process's
    environment); None when there is none, or focus cannot be known (no X11 display)."""
    env = os.environ if env is None else env
    from dictation.session import detect

    session = detect(env)
    if session.wayland:
        if session.focus_route == "sway-ipc":
            return sway_focused_window(env)
        if session.focus_route == "hyprctl":
            return hyprland_focused_window()
        return None
    name = env.get("DISPLAY", "")
    if not name:
        return None
    try:
        from Xlib import error as xerror
        from Xlib.display import Display
    except ImportError:
        return None
    try:
        disp = Display(name)
    except (xerror.DisplayError, OSError):
        return None
    try:
        return window_with_focus(disp)
    except xerror.ConnectionClosedError:
        return None
    finally:
        disp.close()


# --------------------------------------------------------------------------- sway / i3 IPC

IPC_MAGIC = b"i3-ipc"
IPC_GET_TREE = 4
IPC_TIMEOUT_S = 1.0
"""Seconds the compositor may take to answer one IPC request."""
_IPC_HEADER = struct.Struct("=6sII")  # magic, payload length, message type (native order)


def ipc_request(path: str, message_type: int, payload: bytes = b"",
                timeout_s: float = IPC_TIMEOUT_S) -> bytes:
    """One request on the sway/i3 IPC socket ``path``; returns the reply payload (JSON).
    Raises OSError when the socket is gone or answers garbage."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(path)
        sock.sendall(_IPC_HEADER.pack(IPC_MAGIC, len(payload), message_type) + payload)
        header = _recv_exactly(sock, _IPC_HEADER.size)
        magic, length, _ = _IPC_HEADER.unpack(header)
        if magic != IPC_MAGIC:
            raise OSError(f"{path} is not an i3/sway IPC socket")
        return _recv_exactly(sock, length)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            raise OSError("the IPC socket closed mid-reply")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def focused_in_tree(tree: dict[str, object]) -> WindowInfo | None:
    """The focused window of a sway/i3 ``get_tree`` reply, or None (the focus is on an empty
    workspace, or on no window)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.get("focused"):
            if node.get("type") not in ("con", "floating_con"):
                return None  # a workspace or output: no window has the focus
            app_id = node.get("app_id")
            props = node.get("window_properties")
            x_class = props.get("class") if isinstance(props, dict) else None
            pid = node.get("pid")
            return WindowInfo(int(node["id"]),  # type: ignore[call-overload]
                              str(app_id or x_class or ""), str(node.get("name") or ""),
                              pid if isinstance(pid, int) else None)
        for key in ("nodes", "floating_nodes"):
            children = node.get(key)
            if isinstance(children, list):
                stack.extend(children)
    return None


def sway_focused_window(env: Mapping[str, str] | None = None) -> WindowInfo | None:
    """The focused window from sway's (or i3's) IPC socket; None when there is none or the
    socket does not answer."""
    env = os.environ if env is None else env
    path = env.get("SWAYSOCK") or env.get("I3SOCK")
    if not path:
        return None
    try:
        tree = json.loads(ipc_request(path, IPC_GET_TREE))
    except (OSError, ValueError):
        return None
    return focused_in_tree(tree) if isinstance(tree, dict) else None


# --------------------------------------------------------------------------- Hyprland


def parse_hyprctl_window(reply: str) -> WindowInfo | None:
    """The window in ``hyprctl activewindow -j`` output (``{}`` or ``Invalid``: none)."""
    try:
        data = json.loads(reply)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("address"):
        return None
    pid = data.get("pid")
    return WindowInfo(int(str(data["address"]), 16), str(data.get("class") or ""),
                      str(data.get("title") or ""),
                      pid if isinstance(pid, int) and pid > 0 else None)


def hyprland_focused_window(
        runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> WindowInfo | None:
    """The focused window from ``hyprctl activewindow -j``; None when there is none or hyprctl
    fails."""
    try:
        done = runner(["hyprctl", "activewindow", "-j"], capture_output=True, text=True,
                      timeout=IPC_TIMEOUT_S * 2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_hyprctl_window(done.stdout) if done.returncode == 0 else None


class FocusLatch:
    """Remembers the window focused when dictation started; :meth:`check` says whether the
    focus is still there, so the app stops typing (and keeps the text) when it moved away.

    ``source`` returns the currently focused window (default :func:`focused_window`; tests
    pass a fake). If the starting window is unknown (None: GNOME/KDE on Wayland, macOS,
    Windows), the latch cannot tell and :meth:`check` always returns True.
    """

    def __init__(self, source: Callable[[], WindowInfo | None] = focused_window) -> None:
        self._source = source
        self.target: WindowInfo | None = source()
        """The window dictation started in (None: unknown)."""
        self.current: WindowInfo | None = self.target
        """The window focused at the last :meth:`check`."""

    def check(self) -> bool:
        """True while the keyboard focus is on :attr:`target` (or the target is unknown);
        False once it is on another window or on none."""
        if self.target is None:
            return True
        self.current = self._source()
        return self.current is not None and self.current.id == self.target.id
