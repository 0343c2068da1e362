"""What the app can be told to do: the :class:`Command` enum, the :class:`Request` that carries
one to the worker, and the handler table that carries it out.

The hotkey listener, the control socket (``dictation toggle|start|stop|status``) and the tray
menu only *post* requests; the app's one worker calls :func:`dispatch`, which looks the command
up in :data:`HANDLERS` and calls the matching method of a :class:`CommandHandlers` (the app).
Nothing dispatches on strings: the control socket's wire text is parsed into a :class:`Command`
once, at the edge (:func:`parse_control_command`).

This module imports only the standard library: ``dictation toggle`` imports it, and must answer
in well under 150 ms without loading torch or numpy.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)


class Command(enum.StrEnum):
    """Everything the app's worker (or its control socket) carries out. The value is the name
    on the control socket and in logs."""

    TOGGLE = "toggle"
    """Start dictation when idle, stop it when listening."""
    START = "start"
    STOP = "stop"
    STATUS = "status"
    """Answered by the control socket at once (state, model, microphone); never queued."""
    QUIT = "quit"
    SELECT_MODEL = "select_model"
    """Argument: the model's menu name. While listening, applied once the dictation ends."""
    SELECT_MIC = "select_mic"
    """Argument: the input device name; None = the system default."""
    COPY_LAST = "copy_last"
    OPEN_SETTINGS = "open_settings"


CONTROL_COMMANDS: tuple[Command, ...] = (Command.TOGGLE, Command.START, Command.STOP,
                                         Command.STATUS)
"""What ``dictation toggle|start|stop|status`` sends over the control socket."""

CONTROL_HELP: dict[Command, str] = {
    Command.TOGGLE: "start or stop dictation in the running app",
    Command.START: "start dictation in the running app",
    Command.STOP: "stop dictation in the running app",
    Command.STATUS: "state of the running app",
}
"""One line of help per control command (the CLI's subcommand help)."""


class Request:
    """One posted command and its argument (see :class:`Command` for which take one).
    Immutable. (A plain class: a dataclass would import ``inspect``, doubling the start-up
    cost of ``dictation toggle``.)"""

    __slots__ = ("command", "arg")
    command: Command
    arg: str | None

    def __init__(self, command: Command, arg: str | None = None) -> None:
        object.__setattr__(self, "command", command)
        object.__setattr__(self, "arg", arg)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Request is immutable (tried to set {name})")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Request) and self.command is other.command
                and self.arg == other.arg)

    def __hash__(self) -> int:
        return hash((self.command, self.arg))

    def __repr__(self) -> str:
        return f"Request({self.command!s}, {self.arg!r})"


if TYPE_CHECKING:  # a Protocol is only a type: typing stays out of `dictation toggle`
    from typing import Protocol

    class CommandHandlers(Protocol):
        """What :func:`dispatch` drives (the app implements it; each method runs on the
        worker)."""

        @property
        def listening(self) -> bool:
            """Whether a dictation is running (decides what ``toggle`` means)."""
            ...

        def start_dictation(self) -> None: ...

        def stop_dictation(self) -> None: ...

        def quit(self) -> None: ...

        def select_model(self, name: str) -> None: ...

        def select_microphone(self, name: str | None) -> None: ...

        def copy_last(self) -> None: ...

        def open_settings(self) -> None: ...


def _start(h: CommandHandlers, _arg: str | None) -> None:
    h.start_dictation()


def _stop(h: CommandHandlers, _arg: str | None) -> None:
    h.stop_dictation()


def _toggle(h: CommandHandlers, arg: str | None) -> None:
    (_stop if h.listening else _start)(h, arg)


def _quit(h: CommandHandlers, _arg: str | None) -> None:
    h.quit()


def _select_model(h: CommandHandlers, arg: str | None) -> None:
    if not arg:
        raise ValueError("select_model needs a model name")
    h.select_model(arg)


def _select_mic(h: CommandHandlers, arg: str | None) -> None:
    h.select_microphone(arg)


def _copy_last(h: CommandHandlers, _arg: str | None) -> None:
    h.copy_last()


def _open_settings(h: CommandHandlers, _arg: str | None) -> None:
    h.open_settings()


HANDLERS: dict[Command, Callable[[CommandHandlers, str | None], None]] = {
    Command.TOGGLE: _toggle,
    Command.START: _start,
    Command.STOP: _stop,
    Command.QUIT: _quit,
    Command.SELECT_MODEL: _select_model,
    Command.SELECT_MIC: _select_mic,
    Command.COPY_LAST: _copy_last,
    Command.OPEN_SETTINGS: _open_settings,
}
"""The worker's handler of each command (every command but STATUS, which the control socket
answers itself without queuing)."""


def dispatch(handlers: CommandHandlers, request: Request) -> None:
    """Carry out ``request`` on the worker. Raises KeyError for STATUS (not a worker command)
    and ValueError for a missing required argument."""
    HANDLERS[request.command](handlers, request.arg)


def parse_control_command(text: str, allowed: tuple[Command, ...]) -> Command:
    """The control socket's wire text (``"toggle"``, case and spaces ignored) as a Command;
    raises ValueError naming the allowed ones when it is not one of ``allowed``."""
    try:
        command = Command(text.strip().lower())
    except ValueError:
        command = None
    if command is None or command not in allowed:
        raise ValueError(f"unknown command {text!r}; use one of: "
                         f"{', '.join(c.value for c in allowed)}")
    return command
