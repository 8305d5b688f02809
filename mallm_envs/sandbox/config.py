"""A judge's configuration, validated where it is born, and the command that starts a worker.

:class:`JudgeConfig` holds every setting of :class:`~mallm_envs.sandbox.judge.Judge` (frozen;
impossible values fail at once with a :class:`~mallm_envs.sandbox.errors.LimitsError` that says
what to change). :func:`discover_host` asks the machine what a worker needs (the interpreter's
layout, the file-system view, bubblewrap, root); :func:`worker_command` is pure: from the
configuration and those facts it builds the command line, environment and worker configuration
of one worker slot, so it can be read and tested without starting a process.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mallm_envs.sandbox.cases import TestSuite
from mallm_envs.sandbox.cgroups import TRAMPOLINE
from mallm_envs.sandbox.errors import LimitsError, SandboxStartError
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.pool import SOURCE_STUB, WORKER_STUB
from mallm_envs.sandbox.view import (
    bwrap_arguments,
    describe_interpreter,
    file_system_view,
    real_executable,
)

ISOLATION_MODES = ("auto", "bwrap", "process")
"""The isolation modes a judge can run in (see ``docs/sandbox.md``)."""
DEFAULT_UID_BASE = 1_500_000_000
"""First uid of the sandbox uids (one per worker) used when the judge runs as root."""
UIDS_PER_JUDGE = 256
"""Sandbox uids one judge may use (its worker slots take them in turn)."""

WORKER_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "PYTHONHASHSEED": "0",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONNOUSERSITE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HOME": "/tmp",
}
"""The whole environment a worker starts with (nothing of the caller's leaks in)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class JudgeConfig:
    """Every setting of a judge (the keyword arguments of :class:`~mallm_envs.sandbox.Judge`).

    None of them changes a verdict of a deterministic program: they choose how runs are kept
    from the machine and how many run at once.
    """

    limits: Limits = field(default_factory=Limits)
    """Default limits of every grade (a grade may pass its own)."""
    workers: int = 2
    """Worker processes, i.e. programs graded at the same time (1 to 256)."""
    isolation: str = "auto"
    """``"auto"`` (every layer this machine allows: namespaces, read-only root, sandbox uid,
    Landlock for what the namespaces do not cover), ``"bwrap"`` (workers inside bubblewrap;
    needs the ``bwrap`` program) or ``"process"`` (no namespaces: process group, rlimits,
    scratch folder, sandbox uid when root, Landlock where the kernel has it)."""
    preload: Sequence[str] | None = None
    """Modules each worker imports once, so that programs do not pay for them (``None``: a set
    of common standard-library modules)."""
    readable_paths: Sequence[str] = ()
    """Extra host paths a run may read (read-only) in the minimal root."""
    allow_site_packages: bool = False
    """Let runs import the packages installed for ``python`` (read-only). Off by default: a run
    sees the interpreter and its standard library only, so it cannot read data that ships in
    an installed package (HumanEval's solutions) or the project's files."""
    scratch_mb: int = 64
    """Size of each worker's private scratch file system, in MiB (without a mount namespace the
    scratch folder lies on the host's disk and the worker ends a run that puts more in it)."""
    uid_base: int = DEFAULT_UID_BASE
    """First sandbox uid when running as root (worker ``i`` gets ``base + k + i`` for a
    per-judge offset ``k``), so that concurrent runs never share a uid."""
    python: str | None = None
    """The interpreter of the workers (``None``: this one)."""
    landlock: bool = True
    """Let the workers add Landlock rules (Linux 5.13+) for what their namespaces do not cover;
    ``False`` only to rule it out when something misbehaves."""
    cpu_quota: float | None = 1.0
    """CPUs that each worker's runs may use together (a cgroup's CPU bandwidth limit; see
    :mod:`mallm_envs.sandbox.cgroups`); ``None``: no quota."""

    def __post_init__(self) -> None:
        if not isinstance(self.limits, Limits):
            raise LimitsError("limits must be a Limits instance")
        if not _is_int(self.workers) or not 1 <= self.workers <= 256:
            raise LimitsError(f"workers must be an int in [1, 256], got {self.workers!r}")
        if self.isolation not in ISOLATION_MODES:
            raise LimitsError(f"isolation must be one of {ISOLATION_MODES}, got {self.isolation!r}")
        if not _is_int(self.scratch_mb) or self.scratch_mb < 1:
            raise LimitsError(f"scratch_mb must be a positive int, got {self.scratch_mb!r}")
        if not _is_int(self.uid_base) or not 1000 <= self.uid_base <= 2**32 - 2 - (1 << 21):
            raise LimitsError(
                f"uid_base must be an unprivileged uid with room above it, got {self.uid_base!r}"
            )
        if not isinstance(self.landlock, bool):
            raise LimitsError(f"landlock must be a bool, got {self.landlock!r}")
        quota = self.cpu_quota
        if quota is not None and (
            isinstance(quota, bool)
            or not isinstance(quota, (int, float))
            or not 0.01 <= quota <= 1024
        ):
            raise LimitsError(
                f"cpu_quota must be None or a number of CPUs in [0.01, 1024], got {quota!r}"
            )
        if not isinstance(self.allow_site_packages, bool):
            raise LimitsError(
                f"allow_site_packages must be a bool, got {self.allow_site_packages!r}"
            )
        if isinstance(self.readable_paths, str):
            raise LimitsError("readable_paths must be a sequence of paths, not one str")
        if self.python is not None and not isinstance(self.python, str):
            raise LimitsError(f"python must be a path to an interpreter, got {self.python!r}")
        # Normalised copies: any sequence of str or os.PathLike in, a tuple of str kept.
        object.__setattr__(self, "readable_paths", tuple(str(p) for p in self.readable_paths))
        if self.preload is not None:
            if isinstance(self.preload, str):
                raise LimitsError("preload must be a sequence of module names, not one str")
            object.__setattr__(self, "preload", tuple(str(m) for m in self.preload))


@dataclass(frozen=True)
class Host:
    """What :func:`discover_host` found out about this machine for a configuration."""

    executable: str
    """The interpreter the workers run (without ``site``: a virtualenv's base interpreter)."""
    compiled: bool
    """Whether that interpreter reads this one's bytecode (then it gets the compiled program)."""
    view: list[list[str]]
    """The read-only file-system view of runs (:func:`mallm_envs.sandbox.view.file_system_view`)."""
    bwrap: str | None
    """The bubblewrap program, when the configuration asks for ``isolation="bwrap"``."""
    root: bool
    """Whether the judge runs as root (then every worker gets a sandbox uid)."""
    uid_offset: int
    """This judge's offset among the sandbox uids (from its process id)."""


def discover_host(config: JudgeConfig) -> Host:
    """Ask the machine what the workers of ``config`` need (runs the interpreter once)."""
    python = config.python or sys.executable
    interpreter = describe_interpreter(python)
    view = file_system_view(
        interpreter,
        allow_site_packages=config.allow_site_packages,
        readable_paths=tuple(config.readable_paths),
    )
    bwrap = None
    if config.isolation == "bwrap":
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxStartError("isolation='bwrap' needs the bwrap program on PATH")
    # Without `site` a virtualenv's interpreter is its base interpreter: start that one
    # (visible in the view even when the virtualenv lies where runs cannot see, e.g. /tmp).
    executable = python if config.allow_site_packages else real_executable(python)
    return Host(
        executable=executable,
        compiled=interpreter.magic == importlib.util.MAGIC_NUMBER.hex(),
        view=view,
        bwrap=bwrap,
        root=os.geteuid() == 0,
        uid_offset=(os.getpid() % 4096) * UIDS_PER_JUDGE,
    )


def sandbox_uids(config: JudgeConfig, host: Host) -> range:
    """The uids the runs of this judge use (empty when the judge does not run as root)."""
    if not host.root:
        return range(0)
    first = config.uid_base + host.uid_offset
    return range(first, first + UIDS_PER_JUDGE)


@dataclass(frozen=True)
class WorkerCommand:
    """How one worker is started: its command line and environment.

    The worker program itself is written to the worker's stdin first (``stdin_program``).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    config: Mapping[str, Any]
    """The worker's configuration (the JSON document that ends the command line)."""
    stdin_program: str
    """``"compiled"`` (marshal of the compiled program) or ``"source"`` (the joined source)."""


def worker_command(
    config: JudgeConfig,
    host: Host,
    slot: int,
    *,
    scratch_root: str | None = None,
    cpu_procs: str | None = None,
) -> WorkerCommand:
    """The command that starts worker ``slot`` of a judge (pure: it starts nothing).

    Args:
        config: the judge's configuration.
        host: what :func:`discover_host` found.
        slot: the worker's slot (its sandbox uid, when root, follows from it).
        scratch_root: the worker's scratch folder on the host; required unless the worker
            runs inside bubblewrap (which gives it a private ``/tmp``).
        cpu_procs: the ``cgroup.procs`` file of the worker's CPU group, if it has one: the
            command then starts with a shell trampoline that enters the group first.
    """
    outer: list[str] = []
    if host.bwrap is not None:
        # As root no user namespace, so the worker can still switch runs to the sandbox uid.
        namespaces = ("ipc", "pid", "net", "uts", "cgroup-try")
        unshare = [f"--unshare-{n}" for n in namespaces] if host.root else ["--unshare-all"]
        # No --die-with-parent: its signal follows the *thread* that started bwrap, so a judge
        # made in a thread that then ends lost its workers. The worker exits by itself when the
        # judge's process dies (its request pipe hangs up), and bwrap with it.
        outer = [host.bwrap, *unshare, "--new-session", *bwrap_arguments(host.view), "--"]
    elif scratch_root is None:
        raise ValueError("a worker outside bubblewrap needs a scratch_root")
    cfg: dict[str, Any] = {
        "namespaces": config.isolation == "auto",
        "view": host.view,
        "scratch_mb": config.scratch_mb,
        "outer": "bwrap" if outer else None,
        "landlock": config.landlock,
    }
    if config.preload is not None:
        cfg["preload"] = list(config.preload)
    cfg["warmup"] = warm_up_job(config.limits)
    if host.root:
        cfg["uid"] = cfg["gid"] = sandbox_uids(config, host)[slot % UIDS_PER_JUDGE]
    if outer:
        cfg["scratch_root"] = "/tmp"
        cfg["scratch_private"] = True
    else:
        cfg["scratch_root"] = scratch_root
    # -S: no `site`, so the worker's sys.path is the standard library only (the view hides
    # site-packages too; with isolation="process" this flag is all that keeps them out).
    flags = ["-s", "-B"] if config.allow_site_packages else ["-s", "-S", "-B"]
    stub = WORKER_STUB if host.compiled else SOURCE_STUB
    argv = [*outer, host.executable, *flags, "-c", stub, json.dumps(cfg)]
    if cpu_procs is not None:  # the worker enters its group before it starts anything
        argv = ["/bin/sh", "-c", TRAMPOLINE, cpu_procs, *argv]
    return WorkerCommand(
        argv=tuple(argv),
        env=dict(WORKER_ENV),
        config=cfg,
        stdin_program="compiled" if host.compiled else "source",
    )


_WARM_UP_CHECK = """
def check(candidate):
    assert candidate(1) == 2
    assert candidate(-3) != 5
    assert candidate([1, 2]) == [1, 2, 1, 2]
    assert candidate('ab') == 'abab'
    assert candidate((1.5, None)) == (1.5, None, 1.5, None)
    assert abs(candidate(0.25) - 0.5) < 1e-6
    assert candidate({'a': 1}) == {'a': 2}
    assert candidate(True)
    for i in range(3):
        assert candidate(i) == 2 * i
"""
_WARM_UP_PROGRAM = """
def double(x):
    if isinstance(x, dict):
        return {k: 2 * v for k, v in x.items()}
    if isinstance(x, (list, tuple, str)):
        return x + x
    return 2 * x
"""


@functools.cache
def warm_up_job(limits: Limits) -> dict[str, Any]:
    """A trusted program and suite each worker runs through its harness before serving."""
    suite = TestSuite.from_check(_WARM_UP_CHECK, "double")
    return {
        "suite": suite.plan.wire,
        "program": _WARM_UP_PROGRAM,
        "entry": "double",
        "limits": limits.to_request(),
    }
