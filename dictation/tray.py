"""System-tray icon (pystray): state icon + tooltip, the app menu, desktop notifications.

The menu is described by plain `MenuEntry` trees (`build_menu`), built from the app's providers
every time pystray refreshes it, and only then converted to pystray objects, so its structure is
testable without a display. `Tray.run()` must be called on the main thread (pystray requires
it); `set_state()`, `refresh_menu()` and `notify()` may be called from any thread. Menu actions
run on the tray's thread: app callbacks should only hand work to the app (e.g. put it on a
queue) and return.

Backends: `PYSTRAY_BACKEND` when set; otherwise "appindicator" when a StatusNotifierWatcher owns
its D-Bus name (GNOME with the AppIndicator extension, KDE), else "gtk" (XEmbed trays), else
"xorg". gtk and appindicator need PyGObject; the xorg backend has no menu (left-click toggles
dictation), which is logged. Small fixes on top of pystray 0.19.5: the gtk backend also gets a
hover tooltip, and the xorg backend gets working clicks and no longer re-docks on every update.
"""

from __future__ import annotations

import enum
import importlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from PIL import Image

from dictation.commands import Command
from dictation.errors import DictationError
from dictation.icons import state_icon

log = logging.getLogger(__name__)

APP_TITLE = "Dictation"
_T = TypeVar("_T")


class TrayState(enum.StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    FINISHING = "finishing"
    ERROR = "error"


STATE_LABELS = {
    TrayState.IDLE: "idle",
    TrayState.LISTENING: "listening",
    TrayState.FINISHING: "finishing",
    TrayState.ERROR: "error",
}


class TrayError(DictationError):
    """No tray backend can be started (no display, missing PyGObject/Xlib)."""


@dataclass
class TrayActions:
    """What the tray calls into. ``post`` runs on the tray thread (queue the work); providers
    are called whenever the menu is rebuilt and must be cheap and thread-safe (read plain
    attributes)."""

    post: Callable[[Command, str | None], None]
    """Post a command with its argument (a model name for SELECT_MODEL, a device name or None
    = the system default for SELECT_MIC)."""
    models: Callable[[], list[str]]
    current_model: Callable[[], str]
    microphones: Callable[[], list[str]]
    current_microphone: Callable[[], str | None]
    """None = the system default input."""
    recent: Callable[[], list[str]] = list
    """The newest dictated texts, newest first (the "Recent" submenu; empty: no submenu)."""
    on_copy_text: Callable[[str], None] | None = None
    """Copies one of ``recent()`` to the clipboard."""
    downloadable: Callable[[], list[tuple[str, str]]] = lambda: []
    """(model id, label) of models the Model menu offers to download."""
    on_download: Callable[[str], None] = lambda _model_id: None
    download_status: Callable[[], str | None] = lambda: None
    """Menu line of the download in progress ("Downloading ID… 42%"), or None."""


@dataclass(frozen=True)
class MenuEntry:
    """One menu item: an action, a submenu, or a separator (`text == SEPARATOR_TEXT`)."""

    text: str
    action: Callable[[], None] | None = None
    submenu: tuple[MenuEntry, ...] = ()
    checked: bool | None = None
    """None = not checkable."""
    radio: bool = False
    default: bool = False
    enabled: bool = True

    @property
    def is_separator(self) -> bool:
        return self.text == SEPARATOR_TEXT

    @property
    def selectable(self) -> bool:
        """Whether keyboard navigation stops on it (GTK skips separators and disabled items)."""
        return not self.is_separator and self.enabled


SEPARATOR_TEXT = "----"
SEPARATOR = MenuEntry(SEPARATOR_TEXT)
SYSTEM_DEFAULT_MIC = "System default"


def tooltip(state: TrayState | str, detail: str = "") -> str:
    """Tooltip text, e.g. "Dictation: listening (small.en)"."""
    text = f"{APP_TITLE}: {STATE_LABELS[TrayState(state)]}"
    return f"{text} — {detail}" if detail else text


def _safe(provider: Callable[[], Any], what: str, fallback: Any) -> Any:
    try:
        return provider()
    except Exception:
        log.exception("tray: could not get %s", what)
        return fallback


RECENT_ITEMS = 8
"""Entries of the "Recent" submenu."""
MENU_LABEL_CHARS = 48
"""Longest menu label; longer texts are cut with an ellipsis."""


def menu_label(text: str) -> str:
    """``text`` on one line, at most :data:`MENU_LABEL_CHARS` characters (GTK reads ``_`` as
    a mnemonic, so it is doubled)."""
    line = " ".join(text.split())
    if len(line) > MENU_LABEL_CHARS:
        line = line[: MENU_LABEL_CHARS - 1].rstrip() + "…"
    return line.replace("_", "__")


def _bind(callback: Callable[[_T], None], value: _T) -> Callable[[], None]:
    def call() -> None:
        callback(value)

    return call


def _download_items(actions: TrayActions) -> tuple[MenuEntry, ...]:
    """Model menu tail: the running download's progress line, then "Download ID (N MB)"
    entries (disabled while a download runs); the app switches when the model is ready."""
    status: str | None = _safe(actions.download_status, "the download status", None)
    offers: list[tuple[str, str]] = _safe(actions.downloadable, "the downloadable models", [])
    busy = status is not None and status.startswith("Downloading")
    items = [MenuEntry(status, enabled=False)] if status else []
    items += [MenuEntry(f"Download {label}", _bind(actions.on_download, model_id),
                        enabled=not busy) for model_id, label in offers]
    return (SEPARATOR, *items) if items else ()


def _post(post: Callable[[Command, str | None], None], command: Command,
          arg: str | None = None) -> Callable[[], None]:
    """A menu action posting ``command`` (with ``arg``) to the app."""

    def call() -> None:
        post(command, arg)

    return call


def build_menu(actions: TrayActions, state: TrayState | str) -> tuple[MenuEntry, ...]:
    """The menu for `state`, built from the app's providers (no display needed)."""
    busy = TrayState(state) in (TrayState.LISTENING, TrayState.FINISHING)

    models: list[str] = _safe(actions.models, "the model list", [])
    current_model: str | None = _safe(actions.current_model, "the current model", None)
    model_items = tuple(
        MenuEntry(m, _post(actions.post, Command.SELECT_MODEL, m), checked=m == current_model,
                  radio=True)
        for m in models
    ) or (MenuEntry("(no models installed)", enabled=False),)
    model_items += _download_items(actions)

    mics: list[str] = _safe(actions.microphones, "the microphone list", [])
    current_mic: str | None = _safe(actions.current_microphone, "the current microphone", None)
    mic_items = (
        MenuEntry(SYSTEM_DEFAULT_MIC, _post(actions.post, Command.SELECT_MIC, None),
                  checked=current_mic is None, radio=True),
        *(
            MenuEntry(m, _post(actions.post, Command.SELECT_MIC, m), checked=m == current_mic,
                      radio=True)
            for m in mics
        ),
    )
    recent: list[str] = _safe(actions.recent, "the recent texts", [])
    recent_items = tuple(
        MenuEntry(menu_label(text), _bind(actions.on_copy_text, text))
        for text in recent[:RECENT_ITEMS]) if actions.on_copy_text else ()
    return (
        MenuEntry("Stop dictation" if busy else "Start dictation",
                  _post(actions.post, Command.TOGGLE), default=True),
        MenuEntry("Model", submenu=model_items),
        MenuEntry("Microphone", submenu=mic_items),
        SEPARATOR,
        MenuEntry("Copy last transcript", _post(actions.post, Command.COPY_LAST)),
        *((MenuEntry("Recent", submenu=recent_items),) if recent_items else ()),
        MenuEntry("Open settings", _post(actions.post, Command.OPEN_SETTINGS)),
        SEPARATOR,
        MenuEntry("Quit", _post(actions.post, Command.QUIT)),
    )


# --------------------------------------------------------------------------- backends


def _status_notifier_watcher_present() -> bool:
    """Whether a StatusNotifierItem host (what AppIndicator talks to) is on the session bus."""
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return False
    try:
        gi: Any = importlib.import_module("gi")  # PyGObject ships no type hints
        gi.require_version("Gio", "2.0")
        repo: Any = importlib.import_module("gi.repository")
        Gio, GLib = repo.Gio, repo.GLib

        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
            "NameHasOwner", GLib.Variant("(s)", ("org.kde.StatusNotifierWatcher",)),
            GLib.VariantType.new("(b)"), Gio.DBusCallFlags.NONE, 500, None,
        )
        return bool(reply.unpack()[0])
    except Exception:
        return False


def backend_candidates() -> list[str]:
    """pystray backends to try, best first."""
    forced = os.environ.get("PYSTRAY_BACKEND")
    if forced:
        return [forced]
    if sys.platform in ("darwin", "win32"):
        return [""]  # pystray's own choice
    if _status_notifier_watcher_present():
        return ["appindicator", "gtk", "xorg"]
    return ["gtk", "appindicator", "xorg"]


def load_pystray(candidates: Sequence[str] | None = None) -> ModuleType:
    """Import pystray with the first backend that starts. pystray fixes its backend on first
    import, so an already imported pystray is returned as is. Raises TrayError."""
    if "pystray" in sys.modules:
        return sys.modules["pystray"]
    errors = []
    saved = os.environ.get("PYSTRAY_BACKEND")
    for name in candidates if candidates is not None else backend_candidates():
        if name:
            os.environ["PYSTRAY_BACKEND"] = name
        try:
            import pystray

            return pystray
        except Exception as e:  # ImportError, gi's ValueError, Xlib's DisplayNameError ...
            errors.append(f"{name or 'default'}: {e}")
            for mod in [m for m in sys.modules if m == "pystray" or m.startswith("pystray.")]:
                del sys.modules[mod]
        finally:
            if saved is None:
                os.environ.pop("PYSTRAY_BACKEND", None)
            else:
                os.environ["PYSTRAY_BACKEND"] = saved
    raise TrayError(
        "Cannot show a tray icon (" + "; ".join(errors) + "). Run inside a desktop session "
        "(DISPLAY set); for the tray menu install PyGObject (pip install 'PyGObject<3.51') and "
        "the GTK introspection data (Debian: gir1.2-gtk-3.0)."
    )


def backend_name(icon: Any) -> str:
    """'gtk', 'appindicator', 'xorg', ... for a pystray Icon."""
    return type(icon).__module__.rsplit(".", 1)[-1].lstrip("_")


# --------------------------------------------------------------------------- tray


def _pystray_action(action: Callable[[], None]) -> Callable[[Any, Any], None]:
    """pystray calls actions as action(icon, item) (it counts the parameters)."""

    def call(_icon: Any, _item: Any) -> None:
        action()

    return call


def _set_gtk_tooltip(icon: Any, text: str) -> None:
    """pystray's gtk backend puts the title into Gtk.StatusIcon's title, which trays do not
    show on hover; set the status icon's tooltip as well (on the GTK main loop)."""
    status_icon = getattr(icon, "_status_icon", None)
    if status_icon is None:
        return
    glib: Any = importlib.import_module("gi.repository.GLib")

    def apply() -> bool:
        status_icon.set_tooltip_text(text)
        return False  # run once

    glib.idle_add(apply)


def _fix_xorg_icon(icon: Any) -> None:
    """Work around two bugs of pystray 0.19's xorg backend (measured on the harness):
    * it handles ButtonPress but never selects it on its window, so clicks do nothing
      (pystray issue #151): select it before the event loop starts;
    * every icon update sends the tray host another dock request, and a second request for
      an already docked window makes trayer drop it about one time in six: dock only while
      not docked (pystray clears `_systray_manager` when the tray host goes away)."""
    try:
        from Xlib import X

        icon._window.change_attributes(
            event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
        icon._display.flush()
        dock = icon._dock_window

        def dock_once() -> None:
            if icon._systray_manager is None:
                dock()

        icon._dock_window = dock_once
    except Exception as e:  # a pystray without these internals: the icon just won't click
        log.warning("cannot patch the xorg tray icon (clicks may not work): %s", e)


@dataclass
class _Shared:
    """State read by the tray thread and written by any thread (under `lock`)."""

    state: TrayState = TrayState.IDLE
    detail: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Tray:
    """The app's tray icon. Create it anywhere, `run()` it on the main thread."""

    def __init__(self, actions: TrayActions, *, name: str = "dictation",
                 icon_size: int = 64) -> None:
        self.actions = actions
        self.name = name
        self.icons = {s: state_icon(s.value, icon_size) for s in TrayState}
        self.ready = threading.Event()
        """Set once the icon is shown and the event loop runs."""
        self._shared = _Shared()
        self._icon: Any = None
        self._pystray: ModuleType | None = None

    # ---- state

    @property
    def state(self) -> TrayState:
        return self._shared.state

    @property
    def detail(self) -> str:
        return self._shared.detail

    @property
    def backend(self) -> str:
        """pystray backend in use ('' before `run()`)."""
        return backend_name(self._icon) if self._icon is not None else ""

    @property
    def has_menu(self) -> bool:
        return self._icon is not None and bool(self._icon.HAS_MENU)

    def image(self) -> Image.Image:
        """The icon image for the current state."""
        return self.icons[self.state]

    def menu_entries(self) -> tuple[MenuEntry, ...]:
        """The menu as it is shown now, with every action wrapped like the real menu's."""
        return tuple(self._guard(e) for e in build_menu(self.actions, self.state))

    def set_state(self, state: TrayState | str, detail: str = "") -> None:
        """Switch icon, tooltip and Start/Stop label; safe from any thread."""
        st = TrayState(state)
        with self._shared.lock:
            self._shared.state, self._shared.detail = st, detail
            icon = self._icon
            if icon is not None:
                icon.icon = self.icons[st]
                icon.title = tooltip(st, detail)
                _set_gtk_tooltip(icon, icon.title)
        if icon is not None:
            icon.update_menu()

    def refresh_menu(self) -> None:
        """Rebuild the menu from the providers (after models or microphones changed)."""
        if self._icon is not None:
            self._icon.update_menu()

    # ---- notifications

    def notify(self, title: str, body: str) -> None:
        """Desktop notification: through the tray when it can, else notify-send, else the log."""
        log.info("notification: %s: %s", title, body)
        icon = self._icon
        if icon is not None and self.ready.is_set() and getattr(icon, "HAS_NOTIFICATION", False):
            try:
                icon.notify(body, title)
                return
            except Exception as e:
                log.warning("tray notification failed (%s); trying notify-send", e)
        exe = shutil.which("notify-send")
        if exe is None:
            return
        try:
            subprocess.run([exe, "--app-name", APP_TITLE, title, body], check=True, timeout=5,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, subprocess.SubprocessError) as e:
            log.warning("notify-send failed: %s", e)

    # ---- running

    def _guard(self, entry: MenuEntry) -> MenuEntry:
        """The entry with its action (and submenu actions) logging and notifying on error."""
        if entry.submenu:
            return MenuEntry(entry.text, None, tuple(self._guard(e) for e in entry.submenu),
                             entry.checked, entry.radio, entry.default, entry.enabled)
        action = entry.action
        if action is None:
            return entry

        def run() -> None:
            try:
                action()
            except Exception as e:
                log.exception("tray: menu item %r failed", entry.text)
                self.notify(APP_TITLE, f"{entry.text} failed: {e}")

        return MenuEntry(entry.text, run, (), entry.checked, entry.radio, entry.default,
                         entry.enabled)

    def _to_pystray(self, entries: Sequence[MenuEntry]) -> tuple[Any, ...]:
        ps = self._pystray
        assert ps is not None
        items = []
        for e in entries:
            if e.is_separator:
                items.append(ps.Menu.SEPARATOR)
            elif e.submenu:
                items.append(ps.MenuItem(e.text, ps.Menu(*self._to_pystray(e.submenu)),
                                         enabled=e.enabled))
            else:
                items.append(ps.MenuItem(
                    e.text, _pystray_action(e.action) if e.action else None,
                    checked=(lambda _item, c=e.checked: c) if e.checked is not None else None,
                    radio=e.radio, default=e.default, enabled=e.enabled,
                ))
        return tuple(items)

    def _create_icon(self) -> Any:
        self._pystray = ps = load_pystray()
        menu = ps.Menu(lambda: self._to_pystray(self.menu_entries()))
        with self._shared.lock:
            icon = ps.Icon(self.name, self.icons[self.state],
                           tooltip(self.state, self.detail), menu)
            self._icon = icon
        name = backend_name(icon)
        _set_gtk_tooltip(icon, icon.title)
        if name == "xorg":
            _fix_xorg_icon(icon)
        if not icon.HAS_MENU:
            log.warning(
                "tray backend %r has no menu: left-click toggles dictation; install PyGObject "
                "(pip install 'PyGObject<3.51') for the full menu", name)
        else:
            log.info("tray backend: %s", name)
        return icon

    def run(self, setup: Callable[[Tray], None] | None = None) -> None:
        """Show the icon and run the tray's event loop on this (main) thread until `stop()`.
        `setup(tray)` runs on a helper thread once the icon is shown. Raises TrayError."""
        icon = self._create_icon()

        def on_ready(_icon: Any) -> None:
            icon.visible = True
            self.ready.set()
            if setup is not None:
                setup(self)

        icon.run(on_ready)

    def stop(self) -> None:
        """End `run()`; safe from any thread and from menu actions."""
        if self._icon is not None:
            self._icon.stop()
