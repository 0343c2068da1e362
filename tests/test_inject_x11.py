"""The X11 typing back-ends on a real X display (the shared harness): real key events into the
harness' Tk text box and into a real xterm, read back and compared exactly."""

from __future__ import annotations

import os
import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import desktop_session, harness_clear, harness_focus, harness_text

from dictation.inject import choose_backend, clipboard, xdotool, xtest

pytestmark = pytest.mark.e2e

ASCII = "Hello, world! (x_y) [a-b] {c|d} ~$5 @ 100% #1 ^&*+=<>?/\\'\"`;:"
UNICODE = "naïve café ✓ — Grüße 日本"
MIXED = "emoji 😀, tab\there, line\nbreak: ñ « ü » €"
DECOMPOSED = "cafe\u0301 nai\u0308ve"  # NFD input: typed as NFC
WAIT_S = 10.0  # upper bound for the text box to show what was typed (it is usually < 0.1 s)


@pytest.fixture(scope="module")
def x_desktop() -> Iterator[dict[str, str]]:
    """One harness desktop for the module: X, window manager and text box (no audio, tray)."""
    with desktop_session(E2E_TRAY="0", E2E_NOTIFY="0", E2E_AUDIO="0") as env:
        yield env


@pytest.fixture
def textbox(x_desktop: dict[str, str]) -> Iterator[None]:
    """The harness text box, empty and focused."""
    harness_focus()
    harness_clear()
    yield


def wait_for_text(expected: str, read: Callable[[], str] = harness_text) -> str:
    """Poll ``read()`` until it equals ``expected`` or :data:`WAIT_S` pass; return the last."""
    deadline = time.monotonic() + WAIT_S
    got = read()
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        got = read()
    return got


def xclip_read(target: str = "UTF8_STRING") -> bytes | None:
    done = subprocess.run(
        ["xclip", "-selection", "clipboard", "-o", "-t", target], capture_output=True, timeout=10
    )
    return done.stdout if done.returncode == 0 else None


def xclip_write(data: bytes, target: str = "UTF8_STRING") -> None:
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-t", target, "-i"],
        input=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=10,
        check=True,
    )
    deadline = time.monotonic() + WAIT_S
    while xclip_read(target) != data and time.monotonic() < deadline:
        time.sleep(0.02)


TypeFn = Callable[..., None]
X11_BACKENDS: list[tuple[str, TypeFn]] = [
    ("xtest", xtest.type_text),
    ("xdotool", xdotool.type_text),
    ("clipboard", clipboard.type_text),
]


@pytest.mark.parametrize("name,type_text", X11_BACKENDS, ids=[n for n, _ in X11_BACKENDS])
@pytest.mark.parametrize("text", [ASCII, UNICODE, MIXED], ids=["ascii", "unicode", "mixed"])
def test_backend_types_exact_text(textbox: None, name: str, type_text: TypeFn, text: str) -> None:
    type_text(text)
    assert wait_for_text(text) == text


@pytest.mark.parametrize("name,type_text", X11_BACKENDS, ids=[n for n, _ in X11_BACKENDS])
def test_backend_types_nfc(textbox: None, name: str, type_text: TypeFn) -> None:
    expected = unicodedata.normalize("NFC", DECOMPOSED)
    assert expected != DECOMPOSED
    type_text(DECOMPOSED)
    assert wait_for_text(expected) == expected


def test_successive_calls_append(textbox: None) -> None:
    """Streaming commits arrive piecewise: each call appends to what was typed before."""
    injector = choose_backend("auto")
    assert injector.name == "xtest"
    for piece in ["Grüße", " aus", " 日本", "."]:
        injector.type_text(piece)
    assert wait_for_text("Grüße aus 日本.") == "Grüße aus 日本."


def test_xtest_more_distinct_characters_than_spare_keycodes(textbox: None) -> None:
    """Bindings of spare keycodes are evicted and reused; the keymap is restored afterwards."""
    from Xlib.display import Display

    disp = Display()
    try:
        spares = xtest.XTestTyper(disp).spare_keycodes
        text = "".join(chr(0x4E00 + i) for i in range(len(spares) + 12)) + " ✓"
        xtest.type_text(text)
        assert wait_for_text(text) == text
        first = disp.display.info.min_keycode
        mapping = disp.get_keyboard_mapping(first, disp.display.info.max_keycode - first + 1)
        assert [first + i for i, syms in enumerate(mapping) if not any(syms)] == spares
    finally:
        disp.close()


def test_clipboard_restores_previous_text(textbox: None) -> None:
    previous = "what the user copied ✓".encode()
    xclip_write(previous)
    clipboard.type_text(UNICODE)
    assert wait_for_text(UNICODE) == UNICODE
    assert xclip_read() == previous


def test_clipboard_restores_previous_image(textbox: None) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # opaque bytes: only the format matters
    xclip_write(png, "image/png")
    clipboard.type_text("pasted")
    assert wait_for_text("pasted") == "pasted"
    assert xclip_read("image/png") == png


def test_clipboard_terminal_paste_uses_ctrl_shift_v(textbox: None) -> None:
    """The harness text box binds Ctrl+Shift+V to paste, as terminals do."""
    clipboard.type_text(UNICODE, terminal=True)
    assert wait_for_text(UNICODE) == UNICODE


def test_copy_to_clipboard_leaves_the_text(x_desktop: dict[str, str]) -> None:
    clipboard.copy_to_clipboard(DECOMPOSED)
    deadline = time.monotonic() + WAIT_S
    expected = unicodedata.normalize("NFC", DECOMPOSED).encode()
    while xclip_read() != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert xclip_read() == expected


@contextmanager
def xterm_reading_into(out: Path, per_character: bool = False) -> Iterator[int]:
    """A real xterm (UTF-8 locale) whose shell copies typed lines (``per_character``: every
    character at once) into ``out``; focused. Yields its window id; closes it and gives the
    text box the focus back."""
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    title = f"e2e-xterm-{os.getpid()}"
    proc = subprocess.Popen(
        ["xterm", "-title", title, "-e", "sh", "-c",
         f"{'stty -icanon; ' if per_character else ''}exec cat > '{out}'"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        found = subprocess.run(
            ["xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{title}$"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        window = int(found.stdout.split()[0])
        subprocess.run(["xdotool", "windowactivate", "--sync", str(window)], check=True, timeout=10)
        yield window
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        harness_focus()


def test_xtest_types_into_xterm(x_desktop: dict[str, str], tmp_path: Path) -> None:
    """xterm ignores synthetic (XSendEvent) keys; XTEST keys are real input to it."""
    out = tmp_path / "xterm.txt"
    line = UNICODE + " 😀"
    with xterm_reading_into(out):
        xtest.type_text(line + "\n", terminal=True)
        got = wait_for_text(line + "\n", lambda: out.read_text("utf-8") if out.exists() else "")
    assert got == line + "\n"


def test_xtest_given_the_target_window_types_not_one_character_elsewhere(
        x_desktop: dict[str, str], tmp_path: Path) -> None:
    """The focus moves to an xterm after "Pr" of "Printing" (activated from inside the typer's
    pause after the second character): the text box has exactly "Pr", the xterm nothing, and
    FocusLost says 2 characters were typed. Typing for a window without the focus types
    nothing at all."""
    from Xlib.display import Display

    from dictation.errors import FocusLost

    harness_focus()
    harness_clear()
    box = int(subprocess.run(["xdotool", "getactivewindow"], capture_output=True, text=True,
                             timeout=10, check=True).stdout)
    out = tmp_path / "xterm.txt"
    with xterm_reading_into(out, per_character=True) as term:
        harness_focus()
        pauses: list[float] = []

        def pause(seconds: float) -> None:
            pauses.append(seconds)
            if len(pauses) == 2:  # after the second character
                subprocess.run(["xdotool", "windowactivate", "--sync", str(term)], check=True,
                               timeout=10)
            time.sleep(seconds)

        disp = Display()
        try:
            typer = xtest.XTestTyper(disp, sleep=pause)
            with pytest.raises(FocusLost) as lost:
                typer.type_text("Printing", window=box)
            assert lost.value.typed == 2
            with pytest.raises(FocusLost) as lost:  # the xterm has the focus: nothing typed
                xtest.type_text("never", window=box)
            assert lost.value.typed == 0
            typer.restore()
        finally:
            disp.close()
        assert wait_for_text("Pr") == "Pr"
        time.sleep(0.3)
        assert (out.read_text("utf-8") if out.exists() else "") == ""
