"""Typing through the XDG RemoteDesktop portal (the route on GNOME and KDE Wayland).

The portal itself is a fake (tests/fake_portal.py): GNOME's and KDE's portals cannot run on
this machine. Everything else is real: a private dbus-daemon, the back-end's jeepney client,
the request/Response protocol, gdbus for the probe, the restore-token file on disk."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_portal import FakePortal, running_fake_portal

from dictation.errors import InjectionError
from dictation.inject import portal, portal_keyboard
from dictation.inject.portal_keyboard import (
    KEYSYM_BACKSPACE,
    KEYSYM_RETURN,
    PortalKeyboard,
    keysym,
)


@pytest.fixture
def fake() -> FakePortal:
    return FakePortal()


@pytest.fixture
def bus(fake: FakePortal, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_fake_portal(fake) as address:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address


def taps(symbols: list[int]) -> list[tuple[int, int]]:
    return [(s, state) for s in symbols for state in (1, 0)]


def test_keysyms_of_characters() -> None:
    assert [keysym(c) for c in "Az ~"] == [0x41, 0x7A, 0x20, 0x7E]
    assert keysym("é") == 0xE9 and keysym("\u00a0") == 0xA0
    assert keysym("✓") == 0x01002713 and keysym("€") == 0x010020AC
    assert keysym("\n") == KEYSYM_RETURN and keysym("\t") == 0xFF09


def test_probe_and_availability_through_gdbus(bus: str, fake: FakePortal) -> None:
    status = portal.probe()
    assert (status.version, status.keyboard, status.libei) == (2, True, True)
    assert portal_keyboard.available() is None
    fake.device_types = 2  # a pointer only
    reason = portal_keyboard.available() or ""
    assert "offers no keyboard" in reason


def test_types_keysyms_after_consent_and_keeps_the_restore_token(
        bus: str, fake: FakePortal, tmp_path: Path) -> None:
    token_file = tmp_path / "state" / "portal-restore-token"
    keyboard = PortalKeyboard(bus=bus, restore_path=token_file)
    keyboard.type("Hé ✓\n")
    assert fake.methods()[:4] == ["Get", "CreateSession", "SelectDevices", "Start"]
    assert fake.keys == taps([0x48, 0xE9, 0x20, 0x01002713, KEYSYM_RETURN])
    options = fake.call_args("SelectDevices")[0][1]
    assert options["types"] == ("u", 1) and options["persist_mode"] == ("u", 2)
    assert "restore_token" not in options
    assert token_file.read_text() == "restore-1"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    keyboard.type("x")  # the session stays open: no second dialog
    assert fake.methods().count("Start") == 1
    keyboard.close()
    assert "Close" in fake.methods()

    again = PortalKeyboard(bus=bus, restore_path=token_file)
    again.type("y")
    assert fake.call_args("SelectDevices")[1][1]["restore_token"] == ("s", "restore-1")
    again.close()


def test_a_version_1_portal_gets_no_persistence_options(
        bus: str, fake: FakePortal, tmp_path: Path) -> None:
    fake.version, fake.restore_token = 1, ""
    keyboard = PortalKeyboard(bus=bus, restore_path=tmp_path / "token")
    keyboard.type("a")
    options = fake.call_args("SelectDevices")[0][1]
    assert "persist_mode" not in options and "restore_token" not in options
    assert not (tmp_path / "token").exists()
    keyboard.close()


def test_refusal_in_the_dialog_is_an_error_and_types_nothing(
        bus: str, fake: FakePortal, tmp_path: Path) -> None:
    fake.start_response = 1
    keyboard = PortalKeyboard(bus=bus, restore_path=tmp_path / "token")
    with pytest.raises(InjectionError, match="refused in the desktop's dialog"):
        keyboard.type("secret")
    assert fake.keys == []
    keyboard.close()


def test_no_keyboard_granted_is_an_error(bus: str, fake: FakePortal, tmp_path: Path) -> None:
    fake.granted_devices = 2
    keyboard = PortalKeyboard(bus=bus, restore_path=tmp_path / "token")
    with pytest.raises(InjectionError, match="granted no keyboard"):
        keyboard.type("x")
    assert fake.keys == [] and "Close" in fake.methods()
    keyboard.close()


def test_unanswered_dialog_times_out(bus: str, fake: FakePortal, tmp_path: Path) -> None:
    """A Start whose Response never comes (the user ignores the dialog) ends with an error
    after the consent timeout instead of blocking dictation for ever."""
    fake.start_response = -1
    keyboard = PortalKeyboard(bus=bus, restore_path=tmp_path / "token", consent_timeout_s=0.5)
    with pytest.raises(InjectionError, match="no answer .* to Start within .*not answered"):
        keyboard.type("x")
    keyboard.close()


def test_module_back_end_types_and_erases_on_the_session_bus(
        bus: str, fake: FakePortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setattr(portal_keyboard, "_keyboard", None)
    portal_keyboard.type_text("ok\r\n", terminal=True)
    portal_keyboard.erase(2)
    assert fake.keys == taps([0x6F, 0x6B, KEYSYM_RETURN, KEYSYM_BACKSPACE, KEYSYM_BACKSPACE])
    assert (tmp_path / "dictation" / "portal-restore-token").read_text() == "restore-1"
    portal_keyboard.shared_keyboard().close()


def test_no_session_bus_is_an_error(tmp_path: Path) -> None:
    keyboard = PortalKeyboard(bus="unix:path=" + str(tmp_path / "no-bus"),
                              restore_path=tmp_path / "token")
    with pytest.raises(InjectionError, match="cannot reach the D-Bus session bus"):
        keyboard.type("x")
