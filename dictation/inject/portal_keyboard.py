"""Type text through the XDG RemoteDesktop portal (GNOME, KDE and other desktops whose
compositor offers no virtual-keyboard protocol to wtype).

The portal is a D-Bus service (``org.freedesktop.portal.Desktop``); the app talks to it with
jeepney (pure-Python D-Bus). A portal session is opened once, the first time text is typed:

1. ``CreateSession`` -> a session handle;
2. ``SelectDevices`` with ``types = keyboard`` and, on portal version 2 and later,
   ``persist_mode = 2`` and the ``restore_token`` saved by the previous run;
3. ``Start``: the desktop asks the user, in its own dialog, whether dictation may control the
   keyboard (skipped when a saved restore token is accepted). The reply carries the devices
   granted and a new restore token, kept private (0600) in
   ``$XDG_STATE_HOME/dictation/portal-restore-token`` so the question is asked once.

Each of these calls answers with a ``Request`` object whose ``Response`` signal carries the
outcome (0 granted, 1 refused by the user, 2 failed); the signal is subscribed to before the
call, at the request path the portal documents (``.../request/SENDER/TOKEN``), so it cannot be
missed. Text is then sent as X keysyms with ``NotifyKeyboardKeysym`` (press, release): the
compositor finds the key and the shift level for each one. Characters outside the desktop's
keyboard layout may not type where the compositor cannot map their keysym.

Refusals and failures raise :class:`~dictation.errors.InjectionError` with what to do, so the
text is held (journal, clipboard) instead of being lost.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dictation.errors import InjectionError
from dictation.inject.portal import DEST, INTERFACE, KEYBOARD, OBJECT, probe
from dictation.inject.text import prepare_text
from dictation.logfile import log_path

NAME = "portal"

REQUEST_INTERFACE = "org.freedesktop.portal.Request"
SESSION_INTERFACE = "org.freedesktop.portal.Session"
PERSIST_UNTIL_REVOKED = 2
"""``persist_mode`` asking the portal to remember the user's consent until revoked."""
RESTORE_TOKEN_VERSION = 2
"""First RemoteDesktop portal version that accepts ``persist_mode`` and ``restore_token``."""
CALL_TIMEOUT_S = 10.0
"""Seconds to wait for the portal's answer to a call that shows no dialog."""
CONSENT_TIMEOUT_S = 120.0
"""Seconds to wait for the user to answer the desktop's consent dialog (``Start``)."""
PRESSED, RELEASED = 1, 0
"""``NotifyKeyboardKeysym`` key states."""

KEYSYM_BACKSPACE = 0xFF08
KEYSYM_TAB = 0xFF09
KEYSYM_RETURN = 0xFF0D
_SPECIAL_KEYSYMS = {"\n": KEYSYM_RETURN, "\t": KEYSYM_TAB}

RESPONSE_MEANING = {1: "the user refused in the desktop's dialog",
                    2: "the portal ended the request (another dialog or an error)"}


def keysym(char: str) -> int:
    """The X keysym of one character: Latin-1 keysyms equal the code point (printable ASCII
    and U+00A0..U+00FF), any other Unicode character is 0x01000000 + its code point;
    newline and tab are Return and Tab."""
    if char in _SPECIAL_KEYSYMS:
        return _SPECIAL_KEYSYMS[char]
    code = ord(char)
    if 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xFF:
        return code
    return 0x01000000 + code


def restore_token_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the portal's restore token is kept: beside the log in the XDG state folder."""
    return log_path(env).parent / "portal-restore-token"


def read_restore_token(path: Path) -> str:
    """The saved restore token, or "" when there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def write_restore_token(path: Path, token: str) -> None:
    """Save ``token`` readable by the user only (folder 0700, file 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(token)


def _sender_path_part(unique_name: str) -> str:
    """A unique bus name (``:1.42``) as the portal writes it in request paths (``1_42``)."""
    return unique_name.lstrip(":").replace(".", "_")


class PortalKeyboard:
    """One RemoteDesktop portal session with a keyboard, opened by :meth:`start`."""

    def __init__(self, bus: str = "SESSION", restore_path: Path | None = None,
                 consent_timeout_s: float = CONSENT_TIMEOUT_S) -> None:
        self.bus = bus
        self.restore_path = restore_token_path() if restore_path is None else restore_path
        self.consent_timeout_s = consent_timeout_s
        self.session_handle: str | None = None
        self._connection: Any = None

    # -- D-Bus plumbing -----------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._connection is None:
            from jeepney.io.blocking import open_dbus_connection

            try:
                self._connection = open_dbus_connection(bus=self.bus)
            except Exception as exc:  # no session bus: OSError, KeyError, jeepney's errors
                raise InjectionError(f"cannot reach the D-Bus session bus for the desktop "
                                     f"portal: {exc}") from exc
        return self._connection

    def _call(self, method: str, signature: str, *args: Any,
              interface: str = INTERFACE, path: str = OBJECT) -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import DBusErrorResponse, unwrap_msg

        address = DBusAddress(path, bus_name=DEST, interface=interface)
        try:
            reply = self._connect().send_and_get_reply(
                new_method_call(address, method, signature, args), timeout=CALL_TIMEOUT_S)
            return unwrap_msg(reply)
        except DBusErrorResponse as exc:
            raise InjectionError(f"the desktop portal refused {method}: {exc}") from exc
        except TimeoutError as exc:
            raise InjectionError(f"the desktop portal did not answer {method} within "
                                 f"{CALL_TIMEOUT_S:.0f} s") from exc

    def _request(self, method: str, signature: str, *args: Any, options: dict[str, Any],
                 timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """Call a portal method that answers through a Request's ``Response`` signal; returns
        its results (variants unwrapped). ``options`` gets the ``handle_token``."""
        from jeepney import MatchRule, message_bus
        from jeepney.wrappers import unwrap_msg

        connection = self._connect()
        token = f"dictation_{secrets.token_hex(6)}"
        path = (f"{OBJECT}/request/{_sender_path_part(connection.unique_name)}/{token}")
        rule = MatchRule(type="signal", interface=REQUEST_INTERFACE, member="Response",
                         path=path)
        unwrap_msg(connection.send_and_get_reply(message_bus.AddMatch(rule),
                                                 timeout=CALL_TIMEOUT_S))
        options = {**options, "handle_token": ("s", token)}
        with connection.filter(rule) as queue:
            self._call(method, signature + "a{sv}", *args, options)
            try:
                signal = connection.recv_until_filtered(queue, timeout=timeout_s)
            except TimeoutError as exc:
                raise InjectionError(
                    f"no answer from the desktop portal to {method} within {timeout_s:.0f} s"
                    + (" (the consent dialog was not answered)" if method == "Start" else "")
                ) from exc
        code, results = signal.body
        if code != 0:
            why = RESPONSE_MEANING.get(code, f"response {code}")
            raise InjectionError(f"the desktop portal did not allow typing ({method}: {why}); "
                                 "dictate again and allow \"Remote desktop\"/keyboard control "
                                 "when the desktop asks, or choose another typing back-end")
        return {key: value for key, (_, value) in results.items()}

    # -- the session ----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the portal session with a keyboard (asks the user once; see the module doc)."""
        if self.session_handle is not None:
            return
        version = int(self._call("Get", "ss", INTERFACE, "version",
                                 interface="org.freedesktop.DBus.Properties")[0][1])
        created = self._request("CreateSession", "", options={
            "session_handle_token": ("s", f"dictation_{secrets.token_hex(6)}")})
        handle = str(created["session_handle"])
        select: dict[str, Any] = {"types": ("u", KEYBOARD)}
        if version >= RESTORE_TOKEN_VERSION:
            select["persist_mode"] = ("u", PERSIST_UNTIL_REVOKED)
            token = read_restore_token(self.restore_path)
            if token:
                select["restore_token"] = ("s", token)
        self._request("SelectDevices", "o", handle, options=select)
        started = self._request("Start", "os", handle, "", options={},
                                timeout_s=self.consent_timeout_s)
        if not int(started.get("devices", 0)) & KEYBOARD:
            self._close_session(handle)
            raise InjectionError("the desktop portal granted no keyboard; allow keyboard "
                                 "control when the desktop asks, or choose another typing "
                                 "back-end")
        if started.get("restore_token"):
            write_restore_token(self.restore_path, str(started["restore_token"]))
        self.session_handle = handle

    def _close_session(self, handle: str) -> None:
        with contextlib.suppress(InjectionError):
            self._call("Close", "", interface=SESSION_INTERFACE, path=handle)

    def close(self) -> None:
        """End the portal session and the bus connection."""
        if self.session_handle is not None:
            self._close_session(self.session_handle)
            self.session_handle = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def tap(self, sym: int) -> None:
        """Press and release the key of keysym ``sym``."""
        if self.session_handle is None:
            self.start()
        for state in (PRESSED, RELEASED):
            self._call("NotifyKeyboardKeysym", "oa{sv}iu", self.session_handle, {}, sym, state)

    def type(self, text: str) -> None:
        """Type ``text`` (already prepared) key by key."""
        for char in text:
            self.tap(keysym(char))


_keyboard: PortalKeyboard | None = None
_keyboard_lock = threading.Lock()


def shared_keyboard() -> PortalKeyboard:
    """The app's one portal session (opened on first use)."""
    global _keyboard
    with _keyboard_lock:
        if _keyboard is None:
            _keyboard = PortalKeyboard()
        return _keyboard


def available(probe_fn: Callable[[], Any] = probe) -> str | None:
    """None when the portal offers a keyboard (typing will ask the user once), else why not."""
    try:
        import jeepney  # noqa: F401
    except ImportError:
        return "jeepney (pure-Python D-Bus) is not installed: pip install jeepney"
    status = probe_fn()
    if status.version is None or not status.keyboard:
        return str(status.message())
    return None


def type_text(text: str, *, terminal: bool = False) -> None:
    """Type ``text`` (NFC-normalised) into the focused window through the portal. ``terminal``
    changes nothing (keys work in terminals). Raises InjectionError."""
    del terminal
    shared_keyboard().type(prepare_text(text))


def erase(count: int) -> None:
    """Press BackSpace ``count`` times."""
    keyboard = shared_keyboard()
    for _ in range(max(count, 0)):
        keyboard.tap(KEYSYM_BACKSPACE)
