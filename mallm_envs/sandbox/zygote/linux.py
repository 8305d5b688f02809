"""The worker program's access to Linux: the C library, a raw fork, prctl, capabilities.

Part of the worker program (see :mod:`mallm_envs.sandbox.zygote`): the standard library only.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
"""True for type checkers only: the worker imports nothing for its annotations (which stay
strings), so the parts import their typing names under ``if TYPE_CHECKING:``."""
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

try:  # resource is Linux/Unix-only; without it the server refuses to start (see main.py)
    import resource as resource  # (re-exported to the other parts)
except ImportError:  # pragma: no cover - not a Linux host
    resource = None  # type: ignore[assignment]

# --- Linux constants (values from <sys/prctl.h>, <fcntl.h>) -----------------------------------

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

SYSCALLS = {  # syscall numbers glibc may not wrap, per machine
    "x86_64": {"pivot_root": 155, "capset": 126},
    "aarch64": {"pivot_root": 41, "capset": 91},
}

F_SETPIPE_SZ = 1031  # fcntl: pipe capacity (Linux)
_pidfd_open = os.pidfd_open if hasattr(os, "pidfd_open") else None  # Linux 5.3+, Python 3.9+


def _libc() -> Any:
    """The C library through ctypes, or None where ctypes or the library is missing.

    Typed ``Any``: its functions are untyped, and every caller checks for None first."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:  # pragma: no cover - exotic platforms
        return None


LIBC = _libc()


def _raw_fork() -> Callable[[], int] | None:
    """``fork()`` without Python's at-fork hooks, or None where ctypes is missing.

    ``os.fork`` runs the hooks that modules registered (``random`` reseeds itself from
    ``os.urandom``, ``threading`` rebuilds its bookkeeping, ...): in the server they cost a
    run about a third of a millisecond and ~60 copy-on-write page faults, and the runs need
    none of them: the server has a single thread, holds no lock while it forks (the GIL stays
    with the caller: a ``PyDLL`` call does not release it), and a run's ``random`` state is
    the server's, seeded once before the first fork.
    """
    try:
        import ctypes

        fork = ctypes.PyDLL(None).fork
        fork.restype = ctypes.c_int
        fork.argtypes = ()
        return fork
    except Exception:  # pragma: no cover - no ctypes, or a libc without fork
        return None


_FORK = _raw_fork()


def fork_run() -> int:
    """Fork a run (see :func:`_raw_fork`); raises OSError like ``os.fork``."""
    if _FORK is None:  # pragma: no cover
        return os.fork()
    pid: int = _FORK()
    if pid < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid


def _call(name: str, *args: Any) -> None:
    """Call a libc function that returns -1 on failure; raise OSError with errno."""
    import ctypes

    fn = getattr(LIBC, name)
    if fn(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _syscall(name: str, *args: Any) -> None:
    import ctypes

    number = SYSCALLS.get(os.uname().machine, {}).get(name)
    if number is None:
        raise OSError(errno.ENOSYS, f"no syscall number for {name} on this machine")
    if LIBC.syscall(number, *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _prctl(option: int, arg: int = 0) -> bool:
    if LIBC is None:
        return False
    try:
        _call("prctl", option, arg, 0, 0, 0)
        return True
    except OSError:
        return False


def _drop_capabilities() -> None:
    """Clear the effective, permitted and inheritable capability sets (capset v3)."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if hasattr(LIBC, "capset"):
        _call("capset", header, data)
    else:  # pragma: no cover - libc without the wrapper
        _syscall("capset", header, data)
