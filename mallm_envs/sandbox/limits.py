"""Resource limits of a grading run."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from mallm_envs.sandbox.errors import LimitsError


@dataclass(frozen=True)
class Limits:
    """What one grade may use. Every run of the grade gets these limits afresh.

    Time limits are wall-clock (a sleeping or blocked program is stopped too); the CPU-time
    rlimit is a backstop set from ``total_timeout_s``. Memory is the address-space limit
    (``RLIMIT_AS``), so it also counts memory that is reserved but unused: keep it at 256 MiB
    or more.
    """

    timeout_s: float = 2.0
    """Wall-clock seconds for loading the program, and again for each test."""
    total_timeout_s: float = 20.0
    """Wall-clock seconds for the whole grade; tests not reached in time are timeouts."""
    memory_mb: int = 1024
    """Address-space limit of a run, in MiB (``RLIMIT_AS``)."""
    max_processes: int = 16
    """Processes and threads a run may have at once (``RLIMIT_NPROC``; binds for the sandbox
    uid when the judge runs as root, and inside a user namespace otherwise)."""
    max_file_mb: int = 16
    """Largest file a run may write, in MiB (``RLIMIT_FSIZE``)."""
    max_open_files: int = 64
    """Open file descriptors per process (``RLIMIT_NOFILE``)."""
    max_output_bytes: int = 64 * 1024
    """Bytes of stdout+stderr kept for the grade (the rest is read and counted, not kept)."""
    max_value_bytes: int = 1 << 20
    """Largest serialised value a test may check (bigger values fail the test)."""
    max_checks_per_test: int = 10_000
    """Assertion executions one test may report (a loop of asserts counts each pass)."""
    max_program_bytes: int = 1 << 20
    """Longest program accepted (UTF-8 bytes); longer ones are not run."""

    def __post_init__(self) -> None:
        for name in ("timeout_s", "total_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise LimitsError(f"Limits.{name} must be a number of seconds, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise LimitsError(f"Limits.{name} must be positive and finite, got {value!r}")
        if self.total_timeout_s < self.timeout_s:
            raise LimitsError(
                f"Limits.total_timeout_s ({self.total_timeout_s}) must be at least "
                f"timeout_s ({self.timeout_s})"
            )
        minimum = {
            "memory_mb": 128,
            "max_processes": 1,
            "max_file_mb": 0,
            "max_open_files": 8,
            "max_output_bytes": 0,
            "max_value_bytes": 64,
            "max_checks_per_test": 1,
            "max_program_bytes": 1,
        }
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise LimitsError(f"Limits.{name} must be an int, got {value!r}")
            if value < low:
                raise LimitsError(f"Limits.{name} must be at least {low}, got {value}")

    def to_request(self) -> dict[str, Any]:
        """The limits as the worker protocol sends them."""
        out = asdict(self)
        out["max_record_bytes"] = max(16 << 20, 4 * self.max_value_bytes)
        return out
