"""Typing text into the focused window: one module per back-end, chosen per desktop session.

Every back-end module exposes ``NAME``, ``available(...) -> str | None`` (None when usable,
else the reason) and ``type_text(text, *, terminal=False)``, which NFC-normalises the text and
raises :class:`~dictation.errors.InjectionError` when typing fails.

=========  ==========================================================  =================
backend    how                                                         sessions
=========  ==========================================================  =================
xtest      XTEST key events, spare keycodes remapped for any Unicode   X11 (auto, first)
xdotool    ``xdotool type``                                            X11 (auto, second)
clipboard  clipboard + Ctrl+V (Ctrl+Shift+V in terminals), restored    X11 (by name)
wtype      ``wtype`` (virtual-keyboard protocol), exact Unicode        Wayland (auto)
portal     XDG RemoteDesktop portal keysyms over D-Bus (the desktop    Wayland (auto;
           asks the user once; consent kept by a restore token)        GNOME, KDE)
ydotool    ``ydotool type`` through ydotoold (uinput); non-ASCII runs  Wayland (auto;
           pasted with wl-copy                                         GNOME, KDE)
wlclipboard wl-copy + Ctrl+V (Ctrl+Shift+V in terminals) by wtype or   Wayland (by name,
           ydotool; the user's clipboard restored if still ours        terminals)
pynput     pynput ``Controller.type``                                  macOS, Windows
=========  ==========================================================  =================
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from dictation.errors import ConfigError, InjectionError
from dictation.session import SessionKind, session_kind

Session = SessionKind

BACKENDS: dict[str, str] = {
    "xtest": "xtest",
    "xdotool": "xdotool",
    "clipboard": "clipboard",
    "wtype": "wtype",
    "portal": "portal_keyboard",
    "ydotool": "ydotool",
    "wlclipboard": "wlclipboard",
    "pynput": "pynput_backend",
}
"""Back-end name -> module in this package."""

AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "x11": ("xtest", "xdotool"),
    "wayland": ("wtype", "portal", "ydotool"),
    "macos": ("pynput",),
    "windows": ("pynput",),
    "unknown": (),
}
"""Back-ends ``choose_backend("auto")`` tries, in order, per session type."""


@dataclass(frozen=True)
class Injector:
    """A usable typing back-end: ``type_text(text, terminal)`` types into the focused window."""

    name: str
    type_fn: Callable[..., None]
    erase_fn: Callable[[int], None] | None = None
    """Presses BackSpace n times; None where the back-end cannot (a clipboard paste)."""

    def type_text(self, text: str, terminal: bool = False) -> None:
        """Type ``text`` (NFC-normalised by the back-end); ``terminal`` selects terminal
        conventions (Ctrl+Shift+V to paste). Raises :class:`InjectionError`."""
        self.type_fn(text, terminal=terminal)

    def erase(self, count: int) -> None:
        """Delete ``count`` code points before the caret (BackSpace); InjectionError where
        this back-end cannot."""
        if self.erase_fn is None:
            raise InjectionError(f"the {self.name} typing back-end cannot delete text")
        self.erase_fn(count)


def detect_session(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> Session:
    """The kind of desktop session (:func:`dictation.session.session_kind`)."""
    return session_kind(env, platform)


PASTE_BACKEND: dict[str, str] = {"x11": "clipboard", "wayland": "wlclipboard"}
"""The back-end that pastes whole phrases into terminals, per session type."""


def _unavailable_reason(name: str) -> tuple[Callable[..., None] | None, str | None]:
    """(type_text, None) for a usable back-end, else (None, why not)."""
    try:
        module = importlib.import_module(f"{__name__}.{BACKENDS[name]}")
    except ImportError as exc:
        return None, f"cannot be imported: {exc}"
    reason: str | None = module.available()
    if reason is not None:
        return None, reason
    type_fn: Callable[..., None] = module.type_text
    return type_fn, None


def skipped_before(name: str, session: Session) -> list[str]:
    """``"backend: why not"`` for each back-end ``choose_backend("auto")`` tried before
    ``name`` in ``session`` (what the status command explains)."""
    order = AUTO_ORDER[session]
    earlier = order[:order.index(name)] if name in order else ()
    return [f"{n}: {_unavailable_reason(n)[1]}" for n in earlier]


def choose_backend(name: str = "auto", session: Session | None = None) -> Injector:
    """The typing back-end to use: ``name`` from :data:`BACKENDS`, or ``"auto"`` for the first
    usable one of :data:`AUTO_ORDER` for ``session`` (default: :func:`detect_session`).

    Raises :class:`ConfigError` for an unknown name and :class:`InjectionError` (listing why
    each candidate cannot be used) when nothing usable is found.
    """
    if name != "auto" and name not in BACKENDS:
        raise ConfigError(
            f"typing backend {name!r} is unknown: choose one of auto, {', '.join(BACKENDS)}"
        )
    session = detect_session() if session is None else session
    candidates = AUTO_ORDER[session] if name == "auto" else (name,)
    reasons = []
    for candidate in candidates:
        type_fn, reason = _unavailable_reason(candidate)
        if type_fn is not None:
            module = importlib.import_module(f"{__name__}.{BACKENDS[candidate]}")
            return Injector(candidate, type_fn, getattr(module, "erase", None))
        reasons.append(f"{candidate}: {reason}")
    if not candidates:
        raise InjectionError(
            "cannot type: this desktop session is not X11, Wayland, macOS or Windows (neither "
            "DISPLAY nor WAYLAND_DISPLAY is set); start the app inside your graphical session"
        )
    raise InjectionError(
        f"no typing backend works in this {session} session ({'; '.join(reasons)}); fix one "
        "of these, or choose another backend in the configuration"
        + _portal_note(session)
    )


def _portal_note(session: Session) -> str:
    """On GNOME/KDE Wayland: what the RemoteDesktop portal offers (it asks the user before any
    typing), so the message says what exists on this system."""
    if session != "wayland":
        return ""
    from dictation.session import detect

    if detect().virtual_keyboard:
        return ""
    from dictation.inject.portal import probe

    return f". {probe().message()}"
