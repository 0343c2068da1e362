"""Running the external typing/clipboard tools (xdotool, xclip, wtype, ...) with clear errors."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from dictation.errors import InjectionError

Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]
"""Signature of :func:`subprocess.run`; tests pass a fake one for tools that cannot run here."""

TOOL_TIMEOUT_S = 30.0
"""Seconds a typing tool may run before it is considered hung."""


def run_tool(
    command: Sequence[str],
    *,
    what: str,
    input_bytes: bytes | None = None,
    runner: Runner = subprocess.run,
    timeout_s: float = TOOL_TIMEOUT_S,
    check: bool = True,
    **kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``command``; raise :class:`InjectionError` naming ``what`` if it cannot start,
    hangs, or (when ``check``) exits non-zero, quoting its stderr. Returns the completed
    process. Extra keyword arguments go to the runner (e.g. ``stderr=``)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    options.update(kwargs)
    try:
        done = runner(list(command), input=input_bytes, timeout=timeout_s, check=False, **options)
    except FileNotFoundError as exc:
        raise InjectionError(
            f"{what} failed: {command[0]!r} is not installed (install it, or pick another "
            "typing backend)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise InjectionError(
            f"{what} failed: {command[0]} did not finish within {timeout_s:g} s"
        ) from exc
    except OSError as exc:
        raise InjectionError(f"{what} failed: cannot run {command[0]}: {exc}") from exc
    if check and done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip() if done.stderr else ""
        raise InjectionError(
            f"{what} failed: {command[0]} exited with status {done.returncode}"
            + (f": {err}" if err else "")
        )
    return done
