"""The judge: a pool of warm fork-server workers, and the verdicts it decides from plain values."""

from __future__ import annotations

import builtins
import cmath
import contextlib
import functools
import importlib.util
import json
import marshal
import math
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mallm_envs.sandbox.cases import Plan, Site, TestCase, TestSuite
from mallm_envs.sandbox.cgroups import TRAMPOLINE, CpuGroups, find_cpu_groups
from mallm_envs.sandbox.errors import (
    JudgeClosedError,
    LimitsError,
    SandboxError,
    SandboxStartError,
    TestSuiteError,
    WeakIsolationWarning,
)
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.results import Cause, Grade, Status, TestResult
from mallm_envs.sandbox.values import decode, short_repr
from mallm_envs.sandbox.view import (
    bwrap_arguments,
    describe_interpreter,
    file_system_view,
    real_executable,
)

ZYGOTE = Path(__file__).with_name("_zygote.py")
BWRAP_WORKER_PATH = "/run/sandbox/worker.py"
"""Where the worker script appears inside bubblewrap (the project checkout itself does not)."""
ISOLATION_MODES = ("auto", "bwrap", "process")
DEFAULT_UID_BASE = 1_500_000_000
"""First uid of the sandbox uids (one per worker) used when the judge runs as root."""

_STARTUP_TIMEOUT_S = 60.0
_SLACK_S = 10.0  # the judge waits this much beyond a grade's own time budget for a worker


@dataclass(frozen=True)
class _Reference:
    ok: bool
    value: Any = None
    error: str = ""


# The worker's start-up code: the worker script arrives compiled, as the first frame on the
# worker's stdin, so no file of the project needs to be visible to it and it does not parse its
# own 1,600 lines (whose garbage would stay in its heap: ~2.5 MB that every fork copies).
_WORKER_STUB = (
    "import marshal, os, sys\n"
    "if sys.path and sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "def _read(n):\n"
    "    data = b''\n"
    "    while len(data) < n:\n"
    "        chunk = os.read(0, n - len(data))\n"
    "        if not chunk:\n"
    "            raise SystemExit('no worker code')\n"
    "        data += chunk\n"
    "    return data\n"
    "code = marshal.loads(_read(int.from_bytes(_read(4), 'big')))\n"
    "exec(code, {'__name__': '__main__', '__file__': code.co_filename, '__builtins__': __builtins__})\n"
)


@functools.cache
def _worker_code() -> bytes:
    """The worker script compiled for this interpreter (marshal format), framed."""
    code = compile(ZYGOTE.read_text(), str(ZYGOTE), "exec", dont_inherit=True)
    body = marshal.dumps(code)
    return len(body).to_bytes(4, "big") + body


class _Worker:
    """One fork-server process (see ``_zygote.py``) and the pipe pair to it."""

    def __init__(self, command: list[str], env: dict[str, str], code: bytes | None) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.in_fd = self.proc.stdin.fileno()
        self.out_fd = self.proc.stdout.fileno()
        self.cpu_group: tuple[CpuGroups, int] | None = None  # (groups, slot) it should be in
        if code is not None:  # before any frame: the stub reads it first
            try:
                view = memoryview(code)
                while view:
                    view = view[os.write(self.in_fd, view) :]
            except OSError:
                pass  # the worker died: wait_ready reports it
        os.set_blocking(self.out_fd, False)
        self.buf = bytearray()
        self.hello: dict = {}
        self.dead = False
        self.slot = -1
        self.known_suites: set[str] = set()  # suites this worker has compiled (it caches 512)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.out_fd, selectors.EVENT_READ)
        try:
            while True:
                frame = self.poll_frame()
                if frame is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SandboxStartError("a sandbox worker did not start in time")
                sel.select(left)
        except EOFError:
            self.kill()
            err = b""
            if self.proc.stderr is not None:
                with contextlib.suppress(OSError, ValueError):
                    err = self.proc.stderr.read() or b""
            raise SandboxStartError(
                "a sandbox worker exited while starting: "
                + (err.decode(errors="replace").strip()[-2000:] or "no message")
            ) from None
        finally:
            sel.close()
        if "fatal" in frame:
            self.kill()
            raise SandboxStartError(f"a sandbox worker failed to start: {frame['fatal']}")
        self.hello = frame.get("hello", {})
        if self.cpu_group is not None:  # as the kernel says, not as the worker believes
            groups, slot = self.cpu_group
            if groups.holds(self.proc.pid, slot):
                self.hello.setdefault("layers", []).append("cpu-quota")
            else:
                self.hello.setdefault("notes", []).append(
                    f"no CPU quota: the worker could not enter {groups.folder(slot)}"
                )

    def send(self, obj: dict) -> None:
        body = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
        data = memoryview(len(body).to_bytes(4, "big") + body)
        while data:
            data = data[os.write(self.in_fd, data) :]

    def poll_frame(self) -> dict | None:
        """Read what is available; return a complete frame, None if incomplete, EOFError if gone."""
        while True:
            try:
                chunk = os.read(self.out_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self.dead = True
                break
            self.buf += chunk
        if len(self.buf) >= 4:
            size = int.from_bytes(self.buf[:4], "big")
            if len(self.buf) >= 4 + size:
                body = bytes(self.buf[4 : 4 + size])
                del self.buf[: 4 + size]
                return json.loads(body)
        if self.dead:
            raise EOFError("worker gone")
        return None

    def kill(self) -> None:
        self.dead = True
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()

    def close(self) -> None:
        """Ask the worker to exit (EOF on its request pipe), then make sure it did."""
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.kill()


class _Pool:
    """Idle workers, handed out to one job at a time; dead ones are replaced on demand."""

    def __init__(self, size: int, spawn) -> None:
        self.size = size
        self.spawn = spawn
        self.cond = threading.Condition()
        self.idle: deque[_Worker] = deque()
        self.busy: set[_Worker] = set()
        self.missing = 0
        self.closed = False
        self.hello: dict = {}
        workers = [spawn(slot) for slot in range(size)]
        try:
            for w in workers:
                w.wait_ready(_STARTUP_TIMEOUT_S)
        except BaseException:
            for w in workers:
                w.kill()
            raise
        for slot, w in enumerate(workers):
            w.slot = slot
            self.idle.append(w)
        self.hello = workers[0].hello

    def acquire(self, block: bool) -> _Worker | None:
        with self.cond:
            while True:
                if self.closed:
                    raise JudgeClosedError("the judge is closed")
                if self.idle:
                    w = self.idle.popleft()
                    self.busy.add(w)
                    return w
                if self.missing:
                    self.missing -= 1
                    slot = self._free_slot()
                    break
                if not block:
                    return None
                self.cond.wait()
        try:  # start a replacement outside the lock
            w = self.spawn(slot)
            w.wait_ready(_STARTUP_TIMEOUT_S)
            w.slot = slot
        except BaseException:
            with self.cond:
                self.missing += 1
                self.cond.notify()
            raise
        with self.cond:
            self.busy.add(w)
        return w

    def _free_slot(self) -> int:
        used = {w.slot for w in (*self.idle, *self.busy)}
        return next(i for i in range(self.size + len(used) + 1) if i not in used)

    def release(self, w: _Worker, broken: bool = False) -> None:
        with self.cond:
            self.busy.discard(w)
            if broken or self.closed or w.dead:
                self.missing += 0 if self.closed else 1
                doomed = True
            else:
                self.idle.append(w)
                doomed = False
            self.cond.notify()
        if doomed:
            w.kill()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            idle = list(self.idle)
            self.idle.clear()
            busy = list(self.busy)
            self.cond.notify_all()
        for w in idle:
            w.close()
        for w in busy:  # a grade still running on another thread ends with an infra error
            w.kill()


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

        Args:
            limits: default limits of every grade (a grade may pass its own).
            workers: worker processes, i.e. programs graded at the same time.
            isolation: ``"auto"`` (every layer this machine allows: namespaces, read-only
                root, sandbox uid), ``"bwrap"`` (workers inside bubblewrap; needs the
                ``bwrap`` program) or ``"process"`` (no namespaces: process group, rlimits,
                scratch folder, sandbox uid when root, and Landlock file, TCP and signal
                rules where the kernel has them). ``"auto"`` uses Landlock too for whatever
                the namespaces it gets do not cover.
            preload: modules each worker imports once so that programs do not pay for them
                (default: a set of common standard-library modules).
            readable_paths: extra host paths a run may read (read-only) in the minimal root.
            allow_site_packages: let runs import the packages installed for ``python``
                (its site-packages folders, read-only). Off by default: a run sees the
                interpreter and its standard library only, so it cannot read data that
                ships in an installed package (HumanEval's solutions) or the project's
                files. See :mod:`mallm_envs.sandbox.view`.
            scratch_mb: size of each worker's private scratch file system, in MiB (without
                a mount namespace the scratch folder lies on the host's disk and the worker
                ends a run that puts more than this in it).
            uid_base: first sandbox uid when running as root (worker ``i`` gets ``base + k + i``
                for a per-judge offset ``k``), so that concurrent runs never share a uid.
            python: the interpreter for the workers (default: this one).
            landlock: let the workers add Landlock rules (Linux 5.13+) for what their
                namespaces do not cover (files, TCP, signals); ``False`` only to rule it out
                when something misbehaves. A judge that starts with gaps in its isolation
                warns (:class:`~mallm_envs.sandbox.errors.WeakIsolationWarning`).
            cpu_quota: CPUs that each worker's runs may use together (a cgroup's CPU bandwidth
                limit; see :mod:`mallm_envs.sandbox.cgroups`), so that a run with busy child
                processes cannot slow down the runs graded beside it. ``None``: no quota.
                Where no cgroup can be made the judge goes without and says so in
                ``isolation_notes``.
        """
        self.limits = limits if limits is not None else Limits()
        if not isinstance(self.limits, Limits):
            raise LimitsError("limits must be a Limits instance")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
            raise LimitsError(f"workers must be an int in [1, 256], got {workers!r}")
        if isolation not in ISOLATION_MODES:
            raise LimitsError(f"isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
        if isinstance(scratch_mb, bool) or not isinstance(scratch_mb, int) or scratch_mb < 1:
            raise LimitsError(f"scratch_mb must be a positive int, got {scratch_mb!r}")
        if (
            isinstance(uid_base, bool)
            or not isinstance(uid_base, int)
            or not 1000 <= uid_base <= 2**32 - 2 - (1 << 21)
        ):
            raise LimitsError(
                f"uid_base must be an unprivileged uid with room above it, got {uid_base!r}"
            )
        if not sys.platform.startswith("linux"):
            raise SandboxStartError("the sandbox needs Linux")
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._references: dict[tuple[str, int], _Reference] = {}
        self._tmp: str | None = None
        if not isinstance(landlock, bool):
            raise LimitsError(f"landlock must be a bool, got {landlock!r}")
        if cpu_quota is not None and (
            isinstance(cpu_quota, bool)
            or not isinstance(cpu_quota, (int, float))
            or not 0.01 <= cpu_quota <= 1024
        ):
            raise LimitsError(
                f"cpu_quota must be None or a number of CPUs in [0.01, 1024], got {cpu_quota!r}"
            )
        if not isinstance(allow_site_packages, bool):
            raise LimitsError(f"allow_site_packages must be a bool, got {allow_site_packages!r}")
        if isinstance(readable_paths, str):
            raise LimitsError("readable_paths must be a sequence of paths, not one str")
        python = python or sys.executable
        interpreter = describe_interpreter(python)
        # Same bytecode format: send the compiled worker; otherwise run the script file.
        compiled_worker = interpreter.magic == importlib.util.MAGIC_NUMBER.hex()
        code = _worker_code() if compiled_worker else None
        script = ["-c", _WORKER_STUB] if compiled_worker else [str(ZYGOTE)]
        view = file_system_view(
            interpreter,
            allow_site_packages=allow_site_packages,
            readable_paths=tuple(str(p) for p in readable_paths),
        )
        outer: list[str] = []
        if isolation == "bwrap":
            bwrap = shutil.which("bwrap")
            if bwrap is None:
                raise SandboxStartError("isolation='bwrap' needs the bwrap program on PATH")
            # As root no user namespace, so the worker can still switch runs to the sandbox uid.
            namespaces = ("ipc", "pid", "net", "uts", "cgroup-try")
            unshare = (
                [f"--unshare-{n}" for n in namespaces] if os.geteuid() == 0 else ["--unshare-all"]
            )
            # No --die-with-parent: its signal follows the *thread* that started bwrap, so a
            # judge made in a thread that then ends lost its workers. The worker exits by
            # itself when the judge's process dies (its request pipe hangs up), and bwrap
            # with it.
            outer = [
                bwrap,
                *unshare,
                "--new-session",
                *bwrap_arguments(view, None if compiled_worker else str(ZYGOTE), BWRAP_WORKER_PATH),
                "--",
            ]
            if not compiled_worker:
                script = [BWRAP_WORKER_PATH]
        else:
            self._tmp = tempfile.mkdtemp(prefix="mallm-sandbox-")
            os.chmod(self._tmp, 0o711)
        offset = (os.getpid() % 4096) * 256
        root = os.geteuid() == 0
        self.sandbox_uids = range(uid_base + offset, uid_base + offset + 256) if root else range(0)
        """The uids this judge's runs use (empty when not running as root)."""
        base_cfg = {
            "namespaces": isolation == "auto",
            "view": view,
            "scratch_mb": scratch_mb,
            "outer": "bwrap" if outer else None,
            "landlock": landlock,
        }
        if preload is not None:
            base_cfg["preload"] = [str(m) for m in preload]
        base_cfg["warmup"] = _warm_up_job(self.limits)
        env = {
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

        # -S: no `site`, so the worker's sys.path is the standard library only (the view hides
        # site-packages too; with isolation="process" this flag is all that keeps them out).
        # Without `site` a virtualenv's interpreter is its base interpreter: start that one
        # (visible in the view even when the virtualenv lies where runs cannot see, e.g. /tmp).
        flags = ["-s", "-B"] if allow_site_packages else ["-s", "-S", "-B"]
        executable = python if allow_site_packages else real_executable(python)

        self._cpu_groups: CpuGroups | None = None
        self._cpu_note = ""
        if cpu_quota is not None:
            self._cpu_groups, self._cpu_note = find_cpu_groups(float(cpu_quota))

        def spawn(slot: int) -> _Worker:
            cfg = dict(base_cfg)
            if root:
                cfg["uid"] = cfg["gid"] = self.sandbox_uids[slot % 256]
            if outer:
                cfg["scratch_root"] = "/tmp"
                cfg["scratch_private"] = True
            else:
                assert self._tmp is not None
                folder = os.path.join(self._tmp, f"w{slot}")
                os.makedirs(folder, mode=0o711, exist_ok=True)
                os.chmod(folder, 0o711)
                cfg["scratch_root"] = folder
            command = [*outer, executable, *flags, *script, json.dumps(cfg)]
            groups = self._cpu_groups
            procs = None
            if groups is not None:
                try:
                    procs = groups.prepare(slot)
                except OSError as e:
                    self._cpu_note = f"the worker's cgroup could not be made: {e}"
            if procs is not None:  # the worker enters its group before it starts anything
                command = ["/bin/sh", "-c", TRAMPOLINE, procs, *command]
            worker = _Worker(command, env, code)
            if procs is not None:
                worker.cpu_group = (groups, slot)
            return worker

        try:
            self._pool = _Pool(workers, spawn)
        except BaseException:
            self._cleanup_tmp()
            if self._cpu_groups is not None:
                self._cpu_groups.remove()
            raise
        if self._cpu_note:
            self._pool.hello.setdefault("notes", []).append(f"no CPU quota: {self._cpu_note}")
        self.workers = workers
        self.isolation = isolation
        self.file_system_view = view
        """The read-only view of the host that runs get (see :mod:`mallm_envs.sandbox.view`)."""
        weak = isolation_gaps(self.isolation_layers, root)
        if weak:
            warnings.warn(
                "graded programs run with weak isolation here: "
                + "; ".join(weak)
                + " (see Judge.isolation_layers and Judge.isolation_notes; install bubblewrap "
                "and use isolation='bwrap', or run where namespaces or Landlock are allowed)",
                WeakIsolationWarning,
                stacklevel=2,
            )

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
            early = _reject_program(program, plan, limits)
            prepared.append((program, plan, early))
        self._ensure_references([p for _, p, early in prepared if early is None], limits)
        todo = [(i, prog, plan) for i, (prog, plan, early) in enumerate(prepared) if early is None]
        responses = self._run(
            [(prog, plan.entry_point, plan.wire) for _, prog, plan in todo],
            limits,
        )
        grades: list[Grade | None] = [early for _, _, early in prepared]
        for (i, _, plan), resp in zip(todo, responses):
            grades[i] = _verdict(plan, resp, self._refs_for(plan), limits)
        return grades  # type: ignore[return-value]

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the current workers and every run they finished.

        Read from ``/proc`` (user + system time of each worker process and of its reaped
        children); a replaced worker's time is lost. Benchmarks add the judge's own time.
        """
        with self._pool.cond:
            workers = list(self._pool.idle) + list(self._pool.busy)
        return sum(_tree_cpu_seconds(w.proc.pid) for w in workers)

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
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _refs_for(self, plan: Plan) -> list[_Reference]:
        ref_plan = plan.reference_plan
        if ref_plan is None:
            return []
        key = ref_plan.wire["key"]
        with self._lock:
            return [
                self._references.get((key, i), _Reference(False, error="not evaluated"))
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
        responses = self._run([(None, None, p.wire) for p in ref_plans], limits)
        with self._lock:
            for plan, resp in zip(ref_plans, responses):
                key = plan.wire["key"]
                for i, ref in enumerate(_reference_values(plan, resp)):
                    self._references[(key, i)] = ref
                if len(self._references) > 100_000:  # a bounded cache
                    self._references.clear()

    def _run(self, jobs: list[tuple[str | None, str | None, dict]], limits: Limits) -> list[dict]:
        """Send each job to a worker (retrying once on a lost worker); collect the answers."""
        request_limits = limits.to_request()
        wait_s = limits.total_timeout_s + limits.timeout_s + _SLACK_S
        answers: list[dict | None] = [None] * len(jobs)
        pending = deque((i, 0) for i in range(len(jobs)))
        active: dict[_Worker, tuple[int, int, float]] = {}
        sel = selectors.DefaultSelector()
        try:
            while pending or active:
                while pending:
                    w = self._pool.acquire(block=not active)
                    if w is None:
                        break
                    i, attempt = pending.popleft()
                    try:
                        self._send(w, i, jobs[i], request_limits, with_suite=False)
                    except OSError:
                        self._pool.release(w, broken=True)
                        self._retry_or_fail(pending, answers, i, attempt, "worker lost")
                        continue
                    active[w] = (i, attempt, time.monotonic() + wait_s)
                    sel.register(w.out_fd, selectors.EVENT_READ, w)
                if not active:
                    continue
                timeout = max(0.0, min(d for _, _, d in active.values()) - time.monotonic())
                for key, _ in sel.select(timeout):
                    w = key.data
                    i, attempt, _deadline = active[w]
                    try:
                        frame = w.poll_frame()
                    except (EOFError, ValueError):
                        del active[w]
                        sel.unregister(w.out_fd)
                        self._pool.release(w, broken=True)
                        self._retry_or_fail(pending, answers, i, attempt, "the worker died")
                        continue
                    if frame is None:
                        continue
                    if "need_suite" in frame:  # the worker evicted it: send it again
                        w.known_suites.discard(frame["need_suite"])
                        try:
                            self._send(w, i, jobs[i], request_limits, with_suite=True)
                        except OSError:
                            del active[w]
                            sel.unregister(w.out_fd)
                            self._pool.release(w, broken=True)
                            self._retry_or_fail(pending, answers, i, attempt, "worker lost")
                        continue
                    del active[w]
                    sel.unregister(w.out_fd)
                    self._pool.release(w)
                    answers[i] = frame
                now = time.monotonic()
                for w, (i, _attempt, deadline) in list(active.items()):
                    if now >= deadline:
                        del active[w]
                        sel.unregister(w.out_fd)
                        self._pool.release(w, broken=True)
                        answers[i] = {"infra": "the worker stopped responding"}
        except BaseException:
            for w in active:
                self._pool.release(w, broken=True)
            raise
        finally:
            sel.close()
        return answers  # type: ignore[return-value]

    @staticmethod
    def _send(w: _Worker, i: int, job: tuple, limits: dict, with_suite: bool) -> None:
        program, entry, wire = job
        key = wire["key"]
        request = {"id": i, "program": program, "entry": entry, "key": key, "limits": limits}
        if with_suite or key not in w.known_suites:
            request["suite"] = wire
            if len(w.known_suites) >= 256:
                w.known_suites.clear()
            w.known_suites.add(key)
        w.send(request)

    @staticmethod
    def _retry_or_fail(pending, answers, i: int, attempt: int, why: str) -> None:
        if attempt == 0:
            pending.appendleft((i, 1))
        else:
            answers[i] = {"infra": f"{why} (twice)"}


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


def _warm_up_job(limits: Limits) -> dict:
    """A trusted program and suite each worker runs through its harness before serving."""
    suite = TestSuite.from_check(_WARM_UP_CHECK, "double")
    return {
        "suite": suite.plan.wire,
        "program": _WARM_UP_PROGRAM,
        "entry": "double",
        "limits": limits.to_request(),
    }


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


def _tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return total
    return total + sum(_tree_cpu_seconds(c) for c in children)


# --- verdicts -------------------------------------------------------------------------------------


def _reject_program(program: Any, plan: Plan, limits: Limits) -> Grade | None:
    """A grade for input that is not run at all (not a str, too long), else None."""
    if not isinstance(program, str):
        why = f"the program must be a str, got {type(program).__name__}"
    else:
        try:
            size = len(program.encode("utf-8", "surrogatepass"))
        except UnicodeError:  # pragma: no cover - surrogatepass encodes any str
            size = len(program) * 4
        if size <= limits.max_program_bytes:
            return None
        why = f"the program is {size} bytes long; the limit is {limits.max_program_bytes}"
    outcome = _Outcome(Status.ERROR, why, Cause.REJECTED)
    return Grade(results=outcome.results(plan.unit_names), parsed=False, load_error=why)


def _reference_values(plan: Plan, resp: dict) -> list[_Reference]:
    n = len(plan.unit_names)
    if resp.get("infra"):
        return [_Reference(False, error=resp["infra"])] * n
    load = resp.get("load") or {}
    if not load.get("ok"):
        return [_Reference(False, error=_load_outcome(load, 0.0).reason)] * n
    out = []
    for payload in resp.get("units") or [None] * n:
        if not isinstance(payload, dict) or "z" in payload:
            kind = payload.get("z") if isinstance(payload, dict) else None
            out.append(_Reference(False, error=f"reference run ended: {kind}"))
            continue
        reports = payload.get("r") or []
        if len(reports) == 1 and isinstance(reports[0], list) and len(reports[0]) == 2:
            try:
                (value_json,) = reports[0][1]
                out.append(_Reference(True, decode(value_json)))
                continue
            except (ValueError, TypeError, RecursionError):
                pass
        if payload.get("x"):
            out.append(_Reference(False, error=_Exception.of(payload["x"]).text))
        elif reports and len(reports[0]) >= 3 and reports[0][2]:
            out.append(_Reference(False, error=_Exception.of(reports[0][2]).text))
        else:
            out.append(_Reference(False, error="the reference value is not plain data"))
    return out


@dataclass(frozen=True)
class _Outcome:
    """A test's status with its reason (prose) and cause (code), before it gets its name."""

    status: Status
    reason: str = ""
    cause: Cause | None = None
    exception: _Exception | None = None

    def result(self, name: str, checks: int = 0, duration_s: float = 0.0) -> TestResult:
        exc = self.exception
        return TestResult(
            name,
            self.status,
            self.reason,
            checks=checks,
            duration_s=duration_s,
            cause=self.cause,
            exception_type=exc.name if exc is not None else None,
            builtin_exception=exc.builtin if exc is not None else False,
            exception_message=exc.message if exc is not None else None,
        )

    def results(self, names: Sequence[str]) -> tuple[TestResult, ...]:
        return tuple(self.result(name) for name in names)


_PASS = _Outcome(Status.PASSED)

BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)
"""Names of Python's built-in exception classes."""


@dataclass(frozen=True)
class _Exception:
    """An exception the run reported: class name, message, whether the class is a builtin."""

    name: str | None  # None: the record named no class
    message: str | None
    builtin: bool
    memory: bool

    @classmethod
    def of(cls, exc: Any) -> _Exception:
        if not isinstance(exc, dict):
            return cls(None, None, False, False)
        name = exc.get("t") if isinstance(exc.get("t"), str) else "Exception"
        args = exc.get("a")
        try:
            args = decode(args) if args is not None else None
        except (ValueError, TypeError, RecursionError):
            args = None
        if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], str):
            message = args[0] if len(args[0]) <= 200 else args[0][:199] + "…"
        elif isinstance(args, tuple) and args:
            message = short_repr(args)
        else:
            message = None
        # The run checks the class's identity against the builtins it captured before the
        # program ran; the judge also wants the name to be a builtin's (a class the program
        # defines can be named anything, "ValueError" included).
        builtin = exc.get("b") is True and name in BUILTIN_EXCEPTIONS
        return cls(name, message or None, builtin, exc.get("m") is True)

    @property
    def text(self) -> str:
        if self.name is None:
            return "an exception"
        return f"{self.name}: {self.message}" if self.message else self.name

    def outcome(self, reason: str) -> _Outcome:
        if self.memory:
            return _Outcome(Status.MEMORY_LIMIT, reason, Cause.MEMORY, self)
        return _Outcome(Status.ERROR, reason, Cause.EXCEPTION, self)


_KIND_TEXT = {
    "timeout": (Status.TIMEOUT, "exceeded the time limit", Cause.TIMEOUT),
    "cpu": (Status.TIMEOUT, "exceeded the CPU-time limit", Cause.TIMEOUT),
    "budget": (Status.TIMEOUT, "not run: the grade's total time budget ran out", Cause.BUDGET),
    "signal": (Status.ERROR, "the process was killed by a signal", Cause.SIGNAL),
    "exit": (Status.ERROR, "the process exited during the test", Cause.EXIT),
    "channel": (Status.ERROR, "the program closed or broke the result channel", Cause.TAMPER),
    "output": (Status.ERROR, "the program printed more than 64 MiB", Cause.OUTPUT),
    "disk": (Status.ERROR, "the program wrote more than its scratch folder holds", Cause.LIMIT),
    "setup": (Status.INFRA_ERROR, "the sandbox could not apply its limits", Cause.INFRA),
    "crash": (Status.ERROR, "the process crashed", Cause.SIGNAL),
}


def _kind_outcome(payload: dict, limits: Limits) -> _Outcome:
    kind = payload.get("z")
    status, text, cause = _KIND_TEXT.get(
        kind, (Status.INFRA_ERROR, f"unknown run end {kind!r}", Cause.INFRA)
    )
    info = payload.get("info")
    if kind == "timeout":
        text = f"exceeded the {limits.timeout_s:g} s time limit"
    elif kind == "signal" and info is not None:
        text = f"the process was killed by {info}"
    elif kind == "exit" and info is not None:
        text = f"the process exited with code {info} during the test"
    if payload.get("replay"):
        text += " (while replaying the set-up of earlier tests)"
    return _Outcome(status, text, cause)


def _load_outcome(load: dict, timeout_s: float) -> _Outcome:
    """Why the program could not be loaded (every test gets this outcome)."""
    if "z" in load:
        kind = load.get("z")
        status, text, cause = _KIND_TEXT.get(kind, (Status.INFRA_ERROR, str(kind), Cause.INFRA))
        if kind == "timeout":
            return _Outcome(
                status, f"loading the program exceeded the {timeout_s:g} s time limit", cause
            )
        return _Outcome(status, "loading the program: " + text, cause)
    exc = _Exception.of(load.get("exc"))
    if load.get("stage") == "prelude":
        return _Outcome(Status.INFRA_ERROR, "the test prelude raised " + exc.text, Cause.INFRA, exc)
    if load.get("parsed") is False:
        line = load.get("line")
        where = f" (line {line})" if isinstance(line, int) else ""
        reason = f"the program does not compile{where}: " + exc.text
        return _Outcome(Status.ERROR, reason, Cause.SYNTAX, exc)
    if "missing" in load:
        reason = f"the program defines no function named {load['missing']!r}"
        return _Outcome(Status.ERROR, reason, Cause.MISSING)
    if "tampered" in load:
        reason = f"the program modified {load['tampered']}, which the tests rely on"
        return _Outcome(Status.ERROR, reason, Cause.TAMPER)
    if "exc" not in load:
        return _Outcome(
            Status.ERROR, "the program raised an exception while loading", Cause.EXCEPTION
        )
    return exc.outcome("the program raised " + exc.text + " while loading")


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": lambda a, b: a is b,
    "is not": lambda a, b: a is not b,
}


def _isclose(a: Any, b: Any, rel_tol: float, abs_tol: float) -> bool:
    numbers = (int, float, complex)
    if not (isinstance(a, numbers) and isinstance(b, numbers)) or isinstance(a, bool):
        return False
    if isinstance(a, complex) or isinstance(b, complex):
        return cmath.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def _apply(site: Site, values: list[Any]) -> _Outcome:
    """Decide one check from plain values (a pass, a wrong value, or values not comparable)."""
    if site.op in ("truthy", "falsy"):
        (value,) = values
        ok = bool(value) == (site.op == "truthy")
        return (
            _PASS if ok else _Outcome(Status.FAILED, f"got {short_repr(value)}", Cause.WRONG_VALUE)
        )
    left, right = values
    try:
        if site.op == "isclose":
            ok = _isclose(left, right, site.rel_tol, site.abs_tol)
        else:
            ok = bool(_OPS[site.op](left, right))
    except Exception as e:  # comparing plain values of unorderable types, e.g. str < int
        return _Outcome(Status.ERROR, f"{type(e).__name__}: {e}", Cause.UNCOMPARABLE)
    if ok:
        return _PASS
    lit = [s.kind != "run" for s in site.sides]
    if site.op == "==" and lit == [False, True]:
        reason = f"expected {short_repr(right)}, got {short_repr(left)}"
    elif site.op == "==" and lit == [True, False]:
        reason = f"expected {short_repr(left)}, got {short_repr(right)}"
    else:
        reason = f"{short_repr(left)} {site.op} {short_repr(right)} is false"
    return _Outcome(Status.FAILED, reason, Cause.WRONG_VALUE)


def _unit_result(
    plan: Plan, unit: int, payload: Any, refs: list[_Reference], limits: Limits
) -> TestResult:
    name = plan.unit_names[unit]
    if not isinstance(payload, dict):
        return _Outcome(Status.INFRA_ERROR, "no result for this test", Cause.INFRA).result(name)
    duration = payload.get("d") if isinstance(payload.get("d"), float) else 0.0
    if "z" in payload:
        return _kind_outcome(payload, limits).result(name, duration_s=duration)
    reports = payload.get("r")
    if not isinstance(reports, list):
        outcome = _Outcome(Status.INFRA_ERROR, "malformed result", Cause.INFRA)
        return outcome.result(name, duration_s=duration)
    allowed = plan.unit_sites[unit]
    outcome = None
    for report in reports:
        checked = _report_outcome(plan, allowed, report, refs)
        if checked.status is not Status.PASSED:
            outcome = checked
            break
    if outcome is None and payload.get("x") is not None:
        exc = _Exception.of(payload["x"])
        outcome = exc.outcome("raised " + exc.text)
    if outcome is None and not reports:  # a test passes only if a check really ran
        outcome = _Outcome(Status.ERROR, "the test executed no check", Cause.NO_CHECK)
    return (outcome or _PASS).result(name, checks=len(reports), duration_s=duration)


def _report_outcome(
    plan: Plan, allowed: frozenset[int], report: Any, refs: list[_Reference]
) -> _Outcome:
    # Records that do not fit the plan can only come from a program that reached the harness.
    forged = _Outcome(Status.ERROR, "malformed check record", Cause.TAMPER)
    if not isinstance(report, list) or not report or not isinstance(report[0], int):
        return forged
    site_id = report[0]
    if site_id not in allowed:
        return _Outcome(Status.ERROR, "a check record for another test", Cause.TAMPER)
    site = plan.sites[site_id]
    if len(report) == 2:
        raw = report[1]
        if not isinstance(raw, list) or len(raw) != site.runs_values:
            return forged
        try:
            run_values = [decode(v) for v in raw]
        except (ValueError, TypeError, RecursionError, OverflowError):
            return _Outcome(Status.ERROR, "undecodable value", Cause.TAMPER)
        values = []
        for side in site.sides:
            if side.kind == "lit":
                values.append(side.value)
            elif side.kind == "run":
                values.append(run_values[side.index])
            else:
                ref = refs[side.index] if side.index < len(refs) else None
                if ref is None or not ref.ok:
                    why = ref.error if ref is not None else "missing"
                    reason = f"the test's reference value failed: {why}"
                    return _Outcome(Status.INFRA_ERROR, reason, Cause.INFRA)
                values.append(ref.value)
        return _apply(site, values)
    if len(report) >= 3 and report[2] is not None:
        exc = _Exception.of(report[2])
        return exc.outcome("raised " + exc.text)
    if len(report) >= 4 and isinstance(report[3], str):
        return _Outcome(
            Status.FAILED, f"the value is not plain data ({report[3]})", Cause.NOT_PLAIN
        )
    if len(report) >= 5 and report[4] == 1:
        return _Outcome(Status.ERROR, "too many checks in one test", Cause.LIMIT)
    if len(report) >= 5 and report[4] == 2:
        reason = "the test's checked values are too large in total"
        return _Outcome(Status.ERROR, reason, Cause.LIMIT)
    return forged


def _verdict(plan: Plan, resp: dict, refs: list[_Reference], limits: Limits) -> Grade:
    names = plan.unit_names
    if not isinstance(resp, dict) or resp.get("infra"):
        why = resp.get("infra") if isinstance(resp, dict) else "no answer"
        results = _Outcome(Status.INFRA_ERROR, f"sandbox: {why}", Cause.INFRA).results(names)
        return Grade(results=results, parsed=True, load_error=f"sandbox: {why}")
    output = resp.get("output") or ""
    truncated = bool(resp.get("dropped"))
    runs = int(resp.get("runs") or 0)
    elapsed = float(resp.get("elapsed") or 0.0)
    load = resp.get("load") or {"z": "crash"}
    common = {"output": output, "output_truncated": truncated, "runs": runs, "elapsed_s": elapsed}
    if not load.get("ok"):
        outcome = _load_outcome(load, limits.timeout_s)
        return Grade(
            results=outcome.results(names),
            parsed=load.get("parsed") is not False,
            load_error=outcome.reason,
            tampered=load.get("tampered") if isinstance(load.get("tampered"), str) else None,
            **common,
        )
    tampered = resp.get("tampered")
    if tampered:
        reason = f"the program modified {tampered}, which the tests rely on"
        if tampered.startswith("the result channel"):
            reason = f"the program tampered with {tampered}"
        results = _Outcome(Status.ERROR, reason, Cause.TAMPER).results(names)
        return Grade(results=results, parsed=True, tampered=str(tampered), **common)
    units = resp.get("units") or []
    results = tuple(
        _unit_result(plan, u, units[u] if u < len(units) else None, refs, limits)
        for u in range(len(names))
    )
    return Grade(results=results, parsed=True, **common)
