"""The judge: the sandbox's facade. It starts a worker pool from a configuration, grades
programs on it and leaves each verdict to :mod:`mallm_envs.sandbox.verdicts`.

Where the rest lives: :mod:`mallm_envs.sandbox.config` (the validated configuration and the
command that starts a worker), :mod:`mallm_envs.sandbox.pool` (the worker processes and the job
loop), :mod:`mallm_envs.sandbox.zygote` (the worker program). See ``docs/sandbox.md``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Sequence

from mallm_envs.sandbox.cases import Plan, TestCase, TestSuite
from mallm_envs.sandbox.cgroups import CpuGroups, find_cpu_groups
from mallm_envs.sandbox.config import (
    DEFAULT_UID_BASE,
    ISOLATION_MODES,
    Host,
    JudgeConfig,
    discover_host,
    sandbox_uids,
    worker_command,
)
from mallm_envs.sandbox.errors import (
    LimitsError,
    SandboxError,
    SandboxStartError,
    TestSuiteError,
    WeakIsolationWarning,
)
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.pool import Worker, WorkerPool, worker_code, worker_source
from mallm_envs.sandbox.results import Grade
from mallm_envs.sandbox.verdicts import (
    BUILTIN_EXCEPTIONS,
    Reference,
    reference_values,
    reject_program,
    verdict,
)

__all__ = [
    "BUILTIN_EXCEPTIONS",
    "DEFAULT_UID_BASE",
    "ISOLATION_MODES",
    "Judge",
    "JudgeConfig",
    "isolation_gaps",
]


class Judge:
    """Grades programs against test suites in isolated, warm worker processes.

    >>> from mallm_envs.sandbox import Judge, TestCase, TestSuite
    >>> with Judge(workers=1) as judge:  # doctest: +SKIP
    ...     grade = judge.grade("def f(x):\\n    return 2 * x\\n",
    ...                         TestSuite([TestCase("candidate(3)", expected=6)], entry_point="f"))
    >>> grade.passed, grade.total  # doctest: +SKIP
    (1, 1)

    Thread-safe: several threads may call :meth:`grade` and :meth:`grade_many` at once; each
    job holds one worker, so at most ``workers`` programs run at the same time.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int = 2,
        isolation: str = "auto",
        preload: Sequence[str] | None = None,
        readable_paths: Sequence[str] = (),
        allow_site_packages: bool = False,
        scratch_mb: int = 64,
        uid_base: int = DEFAULT_UID_BASE,
        python: str | None = None,
        landlock: bool = True,
        cpu_quota: float | None = 1.0,
    ) -> None:
        """Start ``workers`` warm worker processes.

        The arguments are the fields of :class:`~mallm_envs.sandbox.config.JudgeConfig`, where
        each is documented and validated (a bad value raises
        :class:`~mallm_envs.sandbox.errors.LimitsError`). A judge that starts with gaps in its
        isolation warns (:class:`~mallm_envs.sandbox.errors.WeakIsolationWarning`).
        """
        self._start(
            JudgeConfig(
                limits=limits if limits is not None else Limits(),
                workers=workers,
                isolation=isolation,
                preload=preload,
                readable_paths=readable_paths,
                allow_site_packages=allow_site_packages,
                scratch_mb=scratch_mb,
                uid_base=uid_base,
                python=python,
                landlock=landlock,
                cpu_quota=cpu_quota,
            )
        )

    @classmethod
    def from_config(cls, config: JudgeConfig) -> Judge:
        """A judge started from a :class:`~mallm_envs.sandbox.config.JudgeConfig`."""
        if not isinstance(config, JudgeConfig):
            raise LimitsError(f"config must be a JudgeConfig, got {type(config).__name__}")
        judge = cls.__new__(cls)
        judge._start(config)
        return judge

    def _start(self, config: JudgeConfig) -> None:
        self._tmp: str | None = None
        self._cpu_groups: CpuGroups | None = None
        if not sys.platform.startswith("linux"):
            raise SandboxStartError("the sandbox needs Linux")
        self.config = config
        """The judge's settings."""
        self.limits = config.limits
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._references: dict[tuple[str, int], Reference] = {}
        host = discover_host(config)
        payload = worker_code() if host.compiled else worker_source()
        if host.bwrap is None:
            self._tmp = tempfile.mkdtemp(prefix="mallm-sandbox-")
            os.chmod(self._tmp, 0o711)
        self.sandbox_uids = sandbox_uids(config, host)
        """The uids this judge's runs use (empty when not running as root)."""
        self._cpu_note = ""
        if config.cpu_quota is not None:
            self._cpu_groups, self._cpu_note = find_cpu_groups(float(config.cpu_quota))

        def spawn(slot: int) -> Worker:
            return self._spawn(config, host, payload, slot)

        try:
            self._pool = WorkerPool(config.workers, spawn)
        except BaseException:
            self._cleanup_tmp()
            if self._cpu_groups is not None:
                self._cpu_groups.remove()
            raise
        if self._cpu_note:
            self._pool.hello.setdefault("notes", []).append(f"no CPU quota: {self._cpu_note}")
        self.workers = config.workers
        self.isolation = config.isolation
        self.file_system_view = host.view
        """The read-only view of the host that runs get (see :mod:`mallm_envs.sandbox.view`)."""
        weak = isolation_gaps(self.isolation_layers, host.root)
        if weak:
            warnings.warn(
                "graded programs run with weak isolation here: "
                + "; ".join(weak)
                + " (see Judge.isolation_layers and Judge.isolation_notes; install bubblewrap "
                "and use isolation='bwrap', or run where namespaces or Landlock are allowed)",
                WeakIsolationWarning,
                stacklevel=3,
            )

    def _spawn(self, config: JudgeConfig, host: Host, payload: bytes, slot: int) -> Worker:
        """Start the worker of ``slot``: its scratch folder, its CPU group, its process."""
        scratch_root = None
        if host.bwrap is None:
            assert self._tmp is not None
            scratch_root = os.path.join(self._tmp, f"w{slot}")
            os.makedirs(scratch_root, mode=0o711, exist_ok=True)
            os.chmod(scratch_root, 0o711)
        groups = self._cpu_groups
        procs = None
        if groups is not None:
            try:
                procs = groups.prepare(slot)
            except OSError as e:
                self._cpu_note = f"the worker's cgroup could not be made: {e}"
        command = worker_command(config, host, slot, scratch_root=scratch_root, cpu_procs=procs)
        worker = Worker(list(command.argv), dict(command.env), payload)
        if procs is not None and groups is not None:
            worker.cpu_group = (groups, slot)
        return worker

    # -- public API --------------------------------------------------------------------------------

    @property
    def isolation_layers(self) -> tuple[str, ...]:
        """The isolation layers active in the workers (e.g. ``netns``, ``readonly-root``)."""
        return tuple(self._pool.hello.get("layers", ()))

    @property
    def isolation_notes(self) -> tuple[str, ...]:
        """Why some layers are not active (e.g. ``no pidns: Operation not permitted``)."""
        return tuple(self._pool.hello.get("notes", ()))

    def grade(
        self,
        program: str,
        tests: TestSuite | Sequence[TestCase],
        *,
        limits: Limits | None = None,
    ) -> Grade:
        """Run ``program`` and each test in an isolated worker; return the judge's verdict."""
        return self.grade_many([(program, tests)], limits=limits)[0]

    def grade_many(
        self,
        jobs: Iterable[tuple[str, TestSuite | Sequence[TestCase]]],
        *,
        limits: Limits | None = None,
    ) -> list[Grade]:
        """Grade several programs, using every idle worker at once; results in input order."""
        limits = limits if limits is not None else self.limits
        if not isinstance(limits, Limits):
            raise LimitsError("limits must be a Limits instance")
        if os.getpid() != self._owner_pid:
            raise SandboxError(
                "a Judge cannot be used in a forked copy of its process; make one there"
            )
        prepared: list[tuple[str | None, Plan, Grade | None]] = []
        for job in jobs:
            try:
                program, tests = job
            except (TypeError, ValueError):
                raise TestSuiteError("each job must be a (program, tests) pair") from None
            suite = tests if isinstance(tests, TestSuite) else TestSuite(tuple(tests))
            plan = suite.plan
            early = reject_program(program, plan, limits)
            prepared.append((program, plan, early))
        self._ensure_references([p for _, p, early in prepared if early is None], limits)
        todo = [(i, prog, plan) for i, (prog, plan, early) in enumerate(prepared) if early is None]
        responses = self._pool.run(
            [(prog, plan.entry_point, plan.wire) for _, prog, plan in todo],
            limits,
        )
        grades: list[Grade | None] = [early for _, _, early in prepared]
        for (i, _, plan), resp in zip(todo, responses):
            grades[i] = verdict(plan, resp, self._refs_for(plan), limits)
        return grades  # type: ignore[return-value]

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the current workers and every run they finished.

        Read from ``/proc`` (user + system time of each worker process and of its reaped
        children); a replaced worker's time is lost. Benchmarks add the judge's own time.
        """
        return self._pool.cpu_seconds()

    def close(self) -> None:
        """Stop the workers and remove their scratch folders (idempotent)."""
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.close()
        self._cleanup_tmp()
        groups, self._cpu_groups = getattr(self, "_cpu_groups", None), None
        if groups is not None:
            groups.remove()

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        with contextlib.suppress(Exception):
            self.close()

    # -- internals ---------------------------------------------------------------------------------

    def _cleanup_tmp(self) -> None:
        tmp, self._tmp = getattr(self, "_tmp", None), None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _refs_for(self, plan: Plan) -> list[Reference]:
        ref_plan = plan.reference_plan
        if ref_plan is None:
            return []
        key = ref_plan.wire["key"]
        with self._lock:
            return [
                self._references.get((key, i), Reference(False, error="not evaluated"))
                for i in range(len(plan.references))
            ]

    def _ensure_references(self, plans: list[Plan], limits: Limits) -> None:
        needed: dict[str, Plan] = {}
        with self._lock:
            for plan in plans:
                ref = plan.reference_plan
                if ref is not None and (ref.wire["key"], 0) not in self._references:
                    needed[ref.wire["key"]] = ref
        if not needed:
            return
        ref_plans = list(needed.values())
        responses = self._pool.run([(None, None, p.wire) for p in ref_plans], limits)
        with self._lock:
            for plan, resp in zip(ref_plans, responses):
                key = plan.wire["key"]
                for i, value in enumerate(reference_values(plan, resp)):
                    self._references[(key, i)] = value
                if len(self._references) > 100_000:  # a bounded cache
                    self._references.clear()


def isolation_gaps(layers: Sequence[str], root: bool) -> list[str]:
    """What a run can reach given the workers' isolation layers (empty: nothing we know of)."""
    have = set(layers)
    gaps = []
    if not have & {"readonly-root", "bwrap", "landlock-fs"}:
        if root:
            gaps.append("a run can read any file the sandbox uid can read")
        else:
            gaps.append("a run can read, change and delete any file this user can")
    if not have & {"netns", "bwrap", "seccomp-sockets"}:
        if "landlock-tcp" in have:
            gaps.append("a run can use UDP and unix sockets (a local server's)")
        else:
            gaps.append("a run can open network connections")
    if not root and not have & {"pidns", "bwrap", "landlock-signals"}:
        gaps.append("a run can signal this user's processes")
    if not root and not have & {"ipcns", "bwrap", "seccomp-sysv-ipc"}:
        gaps.append("a run can reach this user's SysV shared memory and queues")
    return gaps
