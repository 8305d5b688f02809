"""Typed errors of the sandbox.

The sandbox stands alone (it imports nothing else from mallm-envs), so its errors have their own
base class, :class:`SandboxError`; each also derives from the closest built-in exception.
A *candidate's* misbehaviour is never raised: it becomes a test status in the
:class:`~mallm_envs.sandbox.results.Grade`. These errors are about the caller's input and the
sandbox's own health.
"""

from __future__ import annotations


class SandboxError(Exception):
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
