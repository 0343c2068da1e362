"""The Wayland typing back-ends and focus source on a real headless sway session (the shared
Wayland harness): wtype into a native GTK 3 window, wl-clipboard paste into it and into a
foot terminal, the user's clipboard given back (or not), and sway IPC focus. Marker ``e2e``;
skipped with the reason when sway is not installed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness_wayland import WaylandDesktop, foot_terminal, wayland_session

from dictation.config import TERMINAL_CLASSES
from dictation.inject import choose_backend, wlclipboard, wtype
from dictation.output.focus import focused_window, is_terminal, sway_focused_window

pytestmark = pytest.mark.e2e

UNICODE = "héllo wörld ✓ — Grüße 日本 🎉"
DECOMPOSED = "cafe\u0301"


@pytest.fixture(scope="module")
def sway() -> Iterator[WaylandDesktop]:
    with wayland_session(export=True) as desktop:
        yield desktop


@pytest.fixture
def textbox(sway: WaylandDesktop) -> WaylandDesktop:
    sway.focus()
    sway.clear()
    return sway


def test_auto_backend_is_wtype_and_types_exact_unicode(textbox: WaylandDesktop) -> None:
    injector = choose_backend("auto")
    assert injector.name == "wtype"
    injector.type_text(f"{UNICODE}\nline two\t{DECOMPOSED}")
    expected = f"{UNICODE}\nline two\tcafé"
    assert textbox.wait_text(expected) == expected


def test_paste_combo_reaches_gtk(textbox: WaylandDesktop) -> None:
    """ctrl+v into GTK works only with the F24 pad (the harness README's quirk)."""
    subprocess.run(["wl-copy", "--", "pad ✓"], check=True, timeout=10)
    wtype.press_combo(("ctrl", "v"))
    assert textbox.wait_text("pad ✓") == "pad ✓"


def test_paste_restores_the_users_clipboard(textbox: WaylandDesktop) -> None:
    subprocess.run(["wl-copy", "--", "the user's ✂ clipboard"], check=True, timeout=10)
    paster = choose_backend("wlclipboard")
    paster.type_text("pasted “phrase” ✓")
    assert textbox.wait_text("pasted “phrase” ✓") == "pasted “phrase” ✓"
    assert textbox.clipboard() == "the user's ✂ clipboard"


def test_paste_keeps_what_was_copied_meanwhile(textbox: WaylandDesktop) -> None:
    subprocess.run(["wl-copy", "--", "old"], check=True, timeout=10)

    def press_then_user_copies(combo: tuple[str, ...]) -> None:
        wtype.press_combo(combo)
        assert textbox.wait_text("ours") == "ours"  # GTK read the clipboard
        subprocess.run(["wl-copy", "--", "copied meanwhile"], check=True, timeout=10)

    restored = wlclipboard.paste("ours", terminal=False, press=press_then_user_copies)
    assert not restored
    assert textbox.clipboard() == "copied meanwhile"


def test_focus_from_sway_ipc(textbox: WaylandDesktop, tmp_path: Path) -> None:
    window = focused_window()
    assert window is not None and window.id == int(textbox.env["E2E_TEXT_WINDOW"])
    assert window.title == "e2e-textbox" and not is_terminal(window.wm_class, TERMINAL_CLASSES)
    started = time.perf_counter()
    for _ in range(20):
        sway_focused_window()
    per_query_s = (time.perf_counter() - started) / 20
    assert per_query_s < 0.5, per_query_s  # bound for a busy machine; ~1 ms measured
    with foot_terminal(textbox, tmp_path / "foot.txt") as con:
        terminal = focused_window()
        assert terminal is not None and terminal.id == con and terminal.wm_class == "foot"
        assert is_terminal(terminal.wm_class, TERMINAL_CLASSES)


def test_terminal_gets_the_phrase_by_ctrl_shift_v(sway: WaylandDesktop, tmp_path: Path) -> None:
    out = tmp_path / "foot.txt"
    subprocess.run(["wl-copy", "--", "keep me"], check=True, timeout=10)
    with foot_terminal(sway, out):
        choose_backend("wlclipboard").type_text("echo naïve ✓ phrase", terminal=True)
        deadline = time.monotonic() + 10
        while out.read_text(encoding="utf-8") != "echo naïve ✓ phrase" \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.read_text(encoding="utf-8") == "echo naïve ✓ phrase"
    assert sway.clipboard() == "keep me"
