"""The worker pool: warm worker processes, the frames spoken with them, and the job loop.

A :class:`Worker` is one interpreter running the worker program
(:mod:`mallm_envs.sandbox.zygote`), started from a small ``-c`` stub that reads the program from
its stdin: compiled (marshal) when the worker's Python has this one's bytecode format, as
source otherwise. A :class:`WorkerPool` hands idle workers to one job at a time, replaces dead
ones on demand and runs a batch of jobs over every idle worker at once
(:meth:`WorkerPool.run`). What the answers mean is decided elsewhere
(:mod:`mallm_envs.sandbox.verdicts`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import marshal
import os
import selectors
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mallm_envs.sandbox import zygote
from mallm_envs.sandbox.cgroups import CpuGroups
from mallm_envs.sandbox.errors import JudgeClosedError, SandboxStartError
from mallm_envs.sandbox.limits import Limits

Job = tuple[str | None, str | None, dict[str, Any]]
"""One request: the program (None for a reference run), its entry point, the suite's wire form."""

STARTUP_TIMEOUT_S = 60.0
"""How long a worker may take to start (namespaces, preloads, the harness's warm-up)."""
SLACK_S = 10.0
"""How much longer than a grade's own time budget the judge waits for a worker's answer."""

# The worker's start-up code: the program arrives as the first frame on the worker's stdin, so
# no file of the project needs to be visible to the worker, and a compiled program does not
# parse its own source (whose garbage would stay in its heap: ~2.5 MB that every fork copies).
WORKER_STUB = (
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
"""The ``-c`` code of a worker whose Python has this one's bytecode format (compiled program)."""
SOURCE_STUB = WORKER_STUB.replace(
    "code = marshal.loads(_read(int.from_bytes(_read(4), 'big')))",
    f"code = compile(_read(int.from_bytes(_read(4), 'big')), {zygote.PROGRAM_NAME!r}, 'exec')",
)
"""The ``-c`` code of a worker whose Python has another bytecode format (program as source)."""


@functools.cache
def worker_code() -> bytes:
    """The worker program compiled for this interpreter (marshal format), framed."""
    body = marshal.dumps(zygote.compiled())
    return len(body).to_bytes(4, "big") + body


@functools.cache
def worker_source() -> bytes:
    """The worker program's joined source (UTF-8), framed: for a Python of another version."""
    body = zygote.program().source.encode()
    return len(body).to_bytes(4, "big") + body


class Worker:
    """One worker process (the fork server of :mod:`mallm_envs.sandbox.zygote`) and its pipes."""

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
        self.hello: dict[str, Any] = {}
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

    def send(self, obj: dict[str, Any]) -> None:
        body = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
        data = memoryview(len(body).to_bytes(4, "big") + body)
        while data:
            data = data[os.write(self.in_fd, data) :]

    def poll_frame(self) -> dict[str, Any] | None:
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
                frame: dict[str, Any] = json.loads(body)
                return frame
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


class WorkerPool:
    """Idle workers, handed out to one job at a time; dead ones are replaced on demand."""

    def __init__(self, size: int, spawn: Callable[[int], Worker]) -> None:
        self.size = size
        self.spawn = spawn
        self.cond = threading.Condition()
        self.idle: deque[Worker] = deque()
        self.busy: set[Worker] = set()
        self.missing = 0
        self.closed = False
        self.hello: dict[str, Any] = {}
        workers = [spawn(slot) for slot in range(size)]
        try:
            for w in workers:
                w.wait_ready(STARTUP_TIMEOUT_S)
        except BaseException:
            for w in workers:
                w.kill()
            raise
        for slot, w in enumerate(workers):
            w.slot = slot
            self.idle.append(w)
        self.hello = workers[0].hello

    def acquire(self, block: bool) -> Worker | None:
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
            w.wait_ready(STARTUP_TIMEOUT_S)
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

    def release(self, w: Worker, broken: bool = False) -> None:
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

    def cpu_seconds(self) -> float:
        """CPU seconds of the current workers and of every run they finished (see Judge)."""
        with self.cond:
            workers = list(self.idle) + list(self.busy)
        return sum(tree_cpu_seconds(w.proc.pid) for w in workers)

    def run(self, jobs: list[Job], limits: Limits) -> list[dict[str, Any]]:
        """Send each job to a worker (retrying once on a lost worker); collect the answers."""
        request_limits = limits.to_request()
        wait_s = limits.total_timeout_s + limits.timeout_s + SLACK_S
        answers: list[dict[str, Any] | None] = [None] * len(jobs)
        pending = deque((i, 0) for i in range(len(jobs)))
        active: dict[Worker, tuple[int, int, float]] = {}
        sel = selectors.DefaultSelector()
        try:
            while pending or active:
                while pending:
                    w = self.acquire(block=not active)
                    if w is None:
                        break
                    i, attempt = pending.popleft()
                    try:
                        self._send(w, i, jobs[i], request_limits, with_suite=False)
                    except OSError:
                        self.release(w, broken=True)
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
                        self.release(w, broken=True)
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
                            self.release(w, broken=True)
                            self._retry_or_fail(pending, answers, i, attempt, "worker lost")
                        continue
                    del active[w]
                    sel.unregister(w.out_fd)
                    self.release(w)
                    answers[i] = frame
                now = time.monotonic()
                for w, (i, _attempt, deadline) in list(active.items()):
                    if now >= deadline:
                        del active[w]
                        sel.unregister(w.out_fd)
                        self.release(w, broken=True)
                        answers[i] = {"infra": "the worker stopped responding"}
        except BaseException:
            for w in active:
                self.release(w, broken=True)
            raise
        finally:
            sel.close()
        return answers  # type: ignore[return-value]

    @staticmethod
    def _send(w: Worker, i: int, job: Job, limits: dict[str, Any], with_suite: bool) -> None:
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
    def _retry_or_fail(
        pending: deque[tuple[int, int]],
        answers: list[dict[str, Any] | None],
        i: int,
        attempt: int,
        why: str,
    ) -> None:
        if attempt == 0:
            pending.appendleft((i, 1))
        else:
            answers[i] = {"infra": f"{why} (twice)"}


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid``, its reaped children and its live ones."""
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
    return total + sum(tree_cpu_seconds(c) for c in children)
