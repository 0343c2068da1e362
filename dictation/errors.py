"""User-facing errors: each message says what went wrong and what to do about it."""

from __future__ import annotations


class DictationError(Exception):
    """Base class of every error the app reports to the user (CLI prints it without a traceback)."""


class AudioError(DictationError):
    """An audio file or stream cannot be read (missing, not audio, empty)."""


class ModelError(DictationError):
    """A model cannot be found, downloaded, verified or loaded."""


class ConfigError(DictationError):
    """A configuration value is invalid; the message names the key and the allowed values."""


class DeviceError(DictationError):
    """A microphone is missing, busy or vanished."""


class InjectionError(DictationError):
    """Text could not be typed into the focused window (it is kept in the journal)."""


class FocusLost(InjectionError):
    """Typing stopped because the keyboard focus left the window dictation types into;
    ``typed`` characters (code points of the NFC text) reached that window before."""

    def __init__(self, message: str, typed: int) -> None:
        super().__init__(message)
        self.typed = typed
