"""Type text on X11 through the XTEST extension, exact for any Unicode character.

Characters the keyboard layout has (at the plain or Shift level) are typed with their own
keycode. Any other character gets its keysym (``0x01000000 | code point``, Latin-1 as is)
bound to a spare keycode (one with no symbols), is pressed and released through XTEST, and
the spare keycodes are emptied again at the end. XTEST events are real input events, so this
also types into programs that ignore synthetic ``XSendEvent`` keys (xterm).

Clients translate a key event with the keymap they hold *when they process the event*, so a
binding must not change while a client may still be translating an earlier event made with
it: bindings live in a least-recently-used cache and are only reused (or emptied) after
:data:`MIN_REUSE_S`. Limitation: an active Caps Lock upper-cases letters, as it would for the
user's own typing.

Focus per character: given the window dictation types into, each character is typed under a
server grab after checking that the input focus is inside that window, so no other client
(the window manager included) can move the focus between the check and the key event: not
one character reaches another window. :class:`~dictation.errors.FocusLost` says how many
characters were typed before the focus moved.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from Xlib import XK, X
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.ext import xtest

from dictation.errors import FocusLost, InjectionError
from dictation.inject.text import prepare_text

NAME = "xtest"

CHAR_DELAY_S = 0.004
"""Pause after each typed character (seconds) so slow applications keep up."""
REMAP_SETTLE_S = 0.01
"""Pause after changing the keymap (seconds); with none, Tk mistyped 6 of 9 test strings."""
MIN_REUSE_S = 0.1
"""A spare keycode keeps its binding at least this long after its last use (seconds)."""

_SPECIAL_KEYSYMS = {"\n": XK.XK_Return, "\t": XK.XK_Tab, "\b": XK.XK_BackSpace}


def keysym_for_char(ch: str) -> int:
    """The X keysym that types ``ch``: Latin-1 keysyms equal the code point, every other
    character has the Unicode keysym ``0x01000000 | code point``; newline is Return."""
    if ch in _SPECIAL_KEYSYMS:
        return _SPECIAL_KEYSYMS[ch]
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 | cp


def available(env: Mapping[str, str] | None = None) -> str | None:
    """None if XTEST typing can be used, else the reason (no DISPLAY, no XTEST, ...)."""
    env = os.environ if env is None else env
    name = env.get("DISPLAY", "")
    if not name:
        return "no X11 display (DISPLAY is not set)"
    try:
        disp = Display(name)
    except (xerror.DisplayError, OSError) as exc:
        return f"cannot connect to the X display {name!r}: {exc}"
    try:
        if not disp.has_extension("XTEST"):
            return f"the X server on {name!r} has no XTEST extension"
    finally:
        disp.close()
    return None


class XTestTyper:
    """Types characters and presses key combinations through XTEST on one X connection.

    ``char_delay_s`` is the pause after each character (seconds); ``sleep`` and ``clock``
    (seconds) are injectable for tests. Call :meth:`restore` (or use :func:`open_typer`) to
    empty the spare keycodes this typer bound.
    """

    def __init__(
        self,
        disp: Display,
        *,
        char_delay_s: float = CHAR_DELAY_S,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not disp.has_extension("XTEST"):
            raise InjectionError(
                "the X server has no XTEST extension; pick the 'xdotool' or 'clipboard' "
                "typing backend"
            )
        self._disp = disp
        self._char_delay_s = char_delay_s
        self._sleep = sleep
        self._clock = clock
        first = disp.display.info.min_keycode
        mapping = disp.get_keyboard_mapping(first, disp.display.info.max_keycode - first + 1)
        self._spares = [first + i for i, syms in enumerate(mapping) if not any(syms)]
        self._shift = disp.keysym_to_keycode(XK.XK_Shift_L) or disp.keysym_to_keycode(XK.XK_Shift_R)
        # keysym -> (keycode, needs Shift); the plain level wins over the Shift level
        self._layout: dict[int, tuple[int, bool]] = {}
        for level in (0, 1) if self._shift else (0,):
            for i, syms in enumerate(mapping):
                if len(syms) > level and syms[level] and syms[level] not in self._layout:
                    self._layout[syms[level]] = (first + i, level == 1)
        self._bound: OrderedDict[int, tuple[int, float]] = OrderedDict()  # keysym -> (kc, used)
        self._inside: dict[tuple[int, int], bool] = {}  # (focus window, target) -> inside

    @property
    def spare_keycodes(self) -> list[int]:
        """Keycodes with no symbols, used for characters the layout lacks."""
        return list(self._spares)

    def _keycode_for(self, keysym: int) -> tuple[int, bool]:
        if keysym in self._layout:
            return self._layout[keysym]
        if keysym in self._bound:
            keycode = self._bound[keysym][0]
            self._bound.move_to_end(keysym)
        else:
            if not self._spares:
                raise InjectionError(
                    f"cannot type keysym {keysym:#x}: the keymap has no spare keycode to bind "
                    "it to; pick the 'xdotool' or 'clipboard' typing backend"
                )
            if len(self._bound) < len(self._spares):
                keycode = self._spares[len(self._bound)]
            else:  # evict the least recently used binding, once no client can still need it
                old, (keycode, used) = next(iter(self._bound.items()))
                wait = MIN_REUSE_S - (self._clock() - used)
                if wait > 0:
                    self._sleep(wait)
                del self._bound[old]
            self._disp.change_keyboard_mapping(keycode, [(keysym,) * 4])
            self._disp.sync()
            self._sleep(REMAP_SETTLE_S)
        self._bound[keysym] = (keycode, self._clock())
        return keycode, False

    def _tap(self, keycode: int, shift: bool) -> None:
        if shift:
            xtest.fake_input(self._disp, X.KeyPress, self._shift)
        xtest.fake_input(self._disp, X.KeyPress, keycode)
        xtest.fake_input(self._disp, X.KeyRelease, keycode)
        if shift:
            xtest.fake_input(self._disp, X.KeyRelease, self._shift)
        self._disp.sync()

    def focus_inside(self, window: int) -> bool:
        """Whether the X input focus is on ``window`` or a window inside it (or on the window
        manager's frame around it)."""
        focus = self._disp.get_input_focus().focus
        if isinstance(focus, int):  # None / PointerRoot
            return False
        key = (focus.id, window)
        if key not in self._inside:
            from dictation.output.focus import _client_window

            root = self._disp.screen().root.id
            inside, current = False, focus
            while current.id != root:
                if current.id == window:
                    inside = True
                    break
                parent = current.query_tree().parent
                if not parent:
                    break
                current = parent
            if not inside:
                client = _client_window(focus, root)
                inside = client is not None and client.id == window
            self._inside[key] = inside
        return self._inside[key]

    def type_text(self, text: str, window: int | None = None) -> None:
        """Type ``text`` (already prepared: NFC, ``\\n`` line breaks) character by character.
        With ``window`` (an X window id), each character is typed only while the input focus is
        inside it (checked under a server grab); else :class:`FocusLost` is raised."""
        for typed, ch in enumerate(text):
            keycode, shift = self._keycode_for(keysym_for_char(ch))
            if window is None:
                self._tap(keycode, shift)
            else:
                self._disp.grab_server()
                try:
                    if not self.focus_inside(window):
                        raise FocusLost(f"the focus left window {window:#x}", typed)
                    self._tap(keycode, shift)
                finally:
                    self._disp.ungrab_server()
                    self._disp.sync()
            if self._char_delay_s > 0:
                self._sleep(self._char_delay_s)

    def press_combo(self, keysyms: Sequence[int]) -> None:
        """Press ``keysyms`` in order (modifiers first), then release them in reverse:
        ``[XK_Control_L, XK_v]`` is Ctrl+V."""
        keycodes = [self._keycode_for(ks)[0] for ks in keysyms]
        for keycode in keycodes:
            xtest.fake_input(self._disp, X.KeyPress, keycode)
        for keycode in reversed(keycodes):
            xtest.fake_input(self._disp, X.KeyRelease, keycode)
        self._disp.sync()

    def restore(self) -> None:
        """Empty the spare keycodes bound so far (after :data:`MIN_REUSE_S` since last use)."""
        if not self._bound:
            return
        last_use = max(used for _, used in self._bound.values())
        wait = MIN_REUSE_S - (self._clock() - last_use)
        if wait > 0:
            self._sleep(wait)
        for keycode, _ in self._bound.values():
            self._disp.change_keyboard_mapping(keycode, [(X.NoSymbol,) * 4])
        self._bound.clear()
        self._disp.sync()


@contextmanager
def open_typer(env: Mapping[str, str] | None = None) -> Iterator[XTestTyper]:
    """Connect to the X display of ``env`` (default: this process's), yield a typer, then
    restore the keymap and disconnect. X failures become :class:`InjectionError`."""
    env = os.environ if env is None else env
    name = env.get("DISPLAY", "")
    if not name:
        raise InjectionError(
            "cannot type through XTEST: no X11 display (DISPLAY is not set); on Wayland "
            "pick the 'wtype' or 'ydotool' typing backend"
        )
    try:
        disp = Display(name)
    except (xerror.DisplayError, OSError) as exc:
        raise InjectionError(
            f"cannot type: cannot connect to the X display {name!r}: {exc}"
        ) from exc
    try:
        typer = XTestTyper(disp)
        try:
            yield typer
        finally:
            typer.restore()
    except (xerror.XError, xerror.ConnectionClosedError) as exc:
        raise InjectionError(
            f"typing through XTEST failed: {exc}; try the 'xdotool' typing backend"
        ) from exc
    finally:
        disp.close()


def type_text(text: str, *, terminal: bool = False, window: int | None = None) -> None:
    """Type ``text`` into the focused X11 window (NFC-normalised first); with ``window``, only
    while the focus is inside that window (:class:`FocusLost` otherwise). ``terminal`` changes
    nothing here: key events type the same into terminals. Raises :class:`InjectionError`."""
    del terminal
    text = prepare_text(text)
    if not text:
        return
    with open_typer() as typer:
        typer.type_text(text, window)


def erase(count: int) -> None:
    """Press BackSpace ``count`` times in the focused X11 window (deletes that many code points
    before the caret). Raises :class:`InjectionError`."""
    if count <= 0:
        return
    with open_typer() as typer:
        for _ in range(count):
            typer.press_combo([XK.XK_BackSpace])
