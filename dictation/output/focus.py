"""Which window has the keyboard focus, and whether it is still the one dictation started in.

:func:`focused_window` asks the X server (``_NET_ACTIVE_WINDOW`` of the window manager, else
the input focus) and walks to the top-level client window that carries ``WM_CLASS``. On
Wayland, macOS and Windows it returns None (focus is unknown there), and a
:class:`FocusLatch` then never reports a change.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from Xlib.display import Display
    from Xlib.xobject.drawable import Window


@dataclass(frozen=True)
class WindowInfo:
    """A top-level window: X id, the class part of ``WM_CLASS`` (e.g. ``XTerm``), title."""

    id: int
    wm_class: str
    title: str


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
    name = env.get("DISPLAY", "")
    if not name or env.get("WAYLAND_DISPLAY"):
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


class FocusLatch:
    """Remembers the window focused when dictation started; :meth:`check` says whether the
    focus is still there, so the app stops typing (and keeps the text) when it moved away.

    ``source`` returns the currently focused window (default :func:`focused_window`; tests
    pass a fake). If the starting window is unknown (None: Wayland, macOS, Windows), the
    latch cannot tell and :meth:`check` always returns True.
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
