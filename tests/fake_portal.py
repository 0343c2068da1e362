"""A fake XDG RemoteDesktop portal on a private, real D-Bus bus (dbus-daemon), for tests.

GNOME's and KDE's portals cannot run on this machine (no GNOME Shell, no KWin), so the portal's
side is played by this small service: it owns ``org.freedesktop.portal.Desktop`` on its own
bus, answers ``Properties.Get`` of ``version`` and ``AvailableDeviceTypes``, and runs the
documented request/response protocol of ``CreateSession``, ``SelectDevices`` and ``Start``
(reply with the request path ``/org/freedesktop/portal/desktop/request/SENDER/TOKEN``, then
the ``Response`` signal on it), recording every call. The client side under test is the real
one, talking real D-Bus through jeepney (and gdbus for the probe).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jeepney import (
    DBusAddress,
    HeaderFields,
    MessageType,
    new_error,
    new_method_return,
    new_signal,
)
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection
from jeepney.wrappers import unwrap_msg

DEST = "org.freedesktop.portal.Desktop"
OBJECT = "/org/freedesktop/portal/desktop"


@dataclass
class FakePortal:
    """Behaviour and record of the fake portal."""

    version: int = 2
    device_types: int = 7
    start_response: int = 0
    """``Response`` code of ``Start``: 0 granted, 1 the user refused; negative: no Response
    at all (the user never answers the dialog)."""
    granted_devices: int = 1
    restore_token: str = "restore-1"
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    keys: list[tuple[int, int]] = field(default_factory=list)
    """(keysym, state) of every NotifyKeyboardKeysym."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def methods(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.calls]

    def call_args(self, name: str) -> list[tuple[Any, ...]]:
        with self.lock:
            return [args for n, args in self.calls if n == name]


def _request_path(sender: str, options: dict[str, Any]) -> str:
    token = options["handle_token"][1]
    return f"{OBJECT}/request/{sender.lstrip(':').replace('.', '_')}/{token}"


def _serve(portal: FakePortal, address: str, ready: threading.Event,
           stop: threading.Event) -> None:
    conn = open_dbus_connection(bus=address)
    unwrap_msg(conn.send_and_get_reply(message_bus.RequestName(DEST, 0)))
    sessions = 0
    ready.set()
    while not stop.is_set():
        try:
            msg = conn.receive(timeout=0.1)
        except TimeoutError:
            continue
        if msg.header.message_type != MessageType.method_call:
            continue
        fields = msg.header.fields
        member, sender = fields[HeaderFields.member], fields[HeaderFields.sender]
        with portal.lock:
            portal.calls.append((member, msg.body))
        response: tuple[int, dict[str, Any]] | None = None
        if member == "Get":
            prop = msg.body[1]
            value = portal.version if prop == "version" else portal.device_types
            conn.send(new_method_return(msg, "v", (("u", value),)))
            continue
        if member == "CreateSession":
            sessions += 1
            options = msg.body[0]
            handle = f"{OBJECT}/session/{sender.lstrip(':').replace('.', '_')}/s{sessions}"
            response = (0, {"session_handle": ("s", handle)})
        elif member == "SelectDevices":
            options = msg.body[1]
            response = (0, {})
        elif member == "Start":
            options = msg.body[2]
            results: dict[str, Any] = {"devices": ("u", portal.granted_devices)}
            if portal.restore_token:
                results["restore_token"] = ("s", portal.restore_token)
            response = (portal.start_response, results if portal.start_response == 0 else {})
        elif member == "NotifyKeyboardKeysym":
            with portal.lock:
                portal.keys.append((msg.body[2], msg.body[3]))
            conn.send(new_method_return(msg))
            continue
        elif member == "Close":
            conn.send(new_method_return(msg))
            continue
        else:
            conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s",
                                (f"no method {member}",)))
            continue
        path = _request_path(sender, options)
        conn.send(new_method_return(msg, "o", (path,)))
        if response[0] < 0:
            continue
        emitter = DBusAddress(path, interface="org.freedesktop.portal.Request")
        conn.send(new_signal(emitter, "Response", "ua{sv}", response))
    conn.close()


@contextmanager
def running_fake_portal(portal: FakePortal) -> Iterator[str]:
    """Start a private dbus-daemon and the fake portal on it; yields the bus address."""
    daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        ready, stop = threading.Event(), threading.Event()
        thread = threading.Thread(target=_serve, args=(portal, address, ready, stop),
                                  daemon=True)
        thread.start()
        assert ready.wait(10), "the fake portal did not start"
        try:
            yield address
        finally:
            stop.set()
            thread.join(5)
    finally:
        daemon.terminate()
        daemon.wait(5)
