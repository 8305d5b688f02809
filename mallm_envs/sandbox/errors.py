"""Typed errors of the sandbox.

The sandbox knows no environment; its one import from the rest of mallm-envs is the library's
error base class (importing ``mallm_envs.sandbox`` imports the ``mallm_envs`` package anyway),
so that ``except MallmError`` also catches the sandbox's errors. :class:`SandboxError` is the
sandbox's own base; each error also derives from the closest built-in exception.
A *candidate's* misbehaviour is never raised: it becomes a test status in the
:class:`~mallm_envs.sandbox.results.Grade`. These errors are about the caller's input and the
sandbox's own health.
"""

from __future__ import annotations

from mallm_envs.core.errors import MallmError


class SandboxError(MallmError):
    """Base class of every error the sandbox raises on purpose."""


class LimitsError(SandboxError, ValueError):
    """A :class:`~mallm_envs.sandbox.limits.Limits` field or a ``Judge`` argument is invalid."""


class TestSuiteError(SandboxError, ValueError):
    """A test case or test suite is malformed (bad syntax, non-plain expected value, ...)."""

    __test__ = False  # not a pytest test class


class SandboxStartError(SandboxError, RuntimeError):
    """A worker process could not be started (the message says why)."""


class JudgeClosedError(SandboxError, RuntimeError):
    """The judge was used after :meth:`~mallm_envs.sandbox.judge.Judge.close`."""


class WeakIsolationWarning(UserWarning):
    """The workers started with less isolation than the sandbox aims for (the text says what a
    run can reach; ``Judge.isolation_layers`` and ``Judge.isolation_notes`` say why)."""
