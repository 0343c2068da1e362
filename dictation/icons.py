"""Tray icons drawn with PIL: a microphone whose colour shows the app state.

idle = grey microphone, listening = red microphone, finishing = amber microphone,
error = dark red microphone with a white "!" on a red badge. Drawn at 4x and downsampled
for smooth edges; all sizes are in pixels.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

RGBA = tuple[int, int, int, int]

STATE_COLOURS: dict[str, RGBA] = {
    "idle": (150, 150, 150, 255),
    "listening": (220, 40, 40, 255),
    "finishing": (240, 160, 20, 255),
    "error": (140, 20, 20, 255),
}
"""Microphone colour per state."""

BADGE_COLOUR: RGBA = (235, 30, 30, 255)
"""Fill of the error badge behind the "!"."""

_SUPERSAMPLE = 4


def _draw_microphone(draw: ImageDraw.ImageDraw, s: int, colour: RGBA) -> None:
    """Microphone glyph on an s x s canvas: capsule, U-shaped holder, stem and base."""
    w = max(1, round(s * 0.07))  # stroke width
    draw.rounded_rectangle(
        (0.34 * s, 0.08 * s, 0.66 * s, 0.60 * s), radius=0.16 * s, fill=colour
    )
    draw.arc((0.22 * s, 0.26 * s, 0.78 * s, 0.74 * s), start=0, end=180, fill=colour, width=w)
    draw.line((0.5 * s, 0.74 * s, 0.5 * s, 0.88 * s), fill=colour, width=w)
    draw.line((0.32 * s, 0.90 * s, 0.68 * s, 0.90 * s), fill=colour, width=w)


def _draw_badge(draw: ImageDraw.ImageDraw, s: int) -> None:
    """A red disc with a white "!" in the bottom-right quarter."""
    draw.ellipse((0.52 * s, 0.52 * s, 0.98 * s, 0.98 * s), fill=BADGE_COLOUR,
                 outline=(255, 255, 255, 255), width=max(1, round(s * 0.03)))
    white = (255, 255, 255, 255)
    draw.rounded_rectangle((0.715 * s, 0.59 * s, 0.785 * s, 0.82 * s), radius=0.03 * s,
                           fill=white)
    draw.ellipse((0.715 * s, 0.85 * s, 0.785 * s, 0.92 * s), fill=white)


def state_icon(state: str, size: int = 64) -> Image.Image:
    """The RGBA icon for `state` (one of STATE_COLOURS), `size` x `size` pixels."""
    try:
        colour = STATE_COLOURS[state]
    except KeyError:
        raise ValueError(
            f"unknown tray state {state!r}; expected one of {sorted(STATE_COLOURS)}"
        ) from None
    big = size * _SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _draw_microphone(draw, big, colour)
    if state == "error":
        _draw_badge(draw, big)
    return image.resize((size, size), Image.Resampling.LANCZOS)
