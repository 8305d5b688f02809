"""Typed errors raised by mallm-envs.

Every error the library raises on purpose derives from :class:`MallmError`, so callers can
catch the whole family at once, and each also derives from the closest built-in exception
(``KeyError``, ``TypeError``, ``RuntimeError`` ...) so generic handlers keep working.
"""

from __future__ import annotations


class MallmError(Exception):
    """Base class of every error mallm-envs raises on purpose."""


# --- registry ---------------------------------------------------------------------------


class RegistryError(MallmError):
    """A problem with looking up or registering an environment id."""


class EnvIdError(RegistryError, ValueError):
    """An environment id is malformed (ids look like ``Name-v0``)."""


class UnknownEnvError(RegistryError, KeyError):
    """No environment of that name is registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class UnknownVersionError(UnknownEnvError):
    """The name exists but not at that version."""


class DuplicateEnvError(RegistryError):
    """An id was registered twice."""


class EnvArgumentError(MallmError, TypeError):
    """``make`` got a keyword argument the environment does not take, or a bad value."""


# --- API usage --------------------------------------------------------------------------


class ApiUsageError(MallmError, RuntimeError):
    """The environment API was called in the wrong order or with the wrong arguments."""


class ResetNeededError(ApiUsageError):
    """``step``/``observe``/``state`` was called before ``reset``."""


class EpisodeOverError(ApiUsageError):
    """``step`` was called after the episode ended."""


class NotYourTurnError(ApiUsageError):
    """An action was given for an agent that is not expected to act now."""


class UnknownAgentError(ApiUsageError, KeyError):
    """An agent name that is not part of this environment."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ActionTypeError(ApiUsageError, TypeError):
    """An action that is not a ``str`` (text environments take text)."""


# --- transcripts ------------------------------------------------------------------------


class TranscriptError(MallmError, ValueError):
    """A transcript file is malformed, of an unknown format version, or does not replay."""
