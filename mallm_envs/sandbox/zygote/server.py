"""The server: the worker's loop that forks one run per request and watches it.

Trusted, never runs candidate code. Once, before the first fork, it sets up the read-only
file-system view, Landlock and the import paths of runs, pre-imports modules and warms up the
harness. Then for each request it forks a run (without Python's at-fork hooks), applies the
run's limits and privileges in the child, sleeps until the run exits or a limit is hit, kills
the run's whole process tree, wipes its scratch folder and answers the judge with the raw
per-test records. Part of the worker program (see :mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import gc
import json
import os
import select
import signal
import sys
import time

from mallm_envs.sandbox.zygote.framing import (
    EXIT_CHANNEL_LOST,
    EXIT_SETUP_FAILED,
    read_frame,
    write_frame,
)
from mallm_envs.sandbox.zygote.harness import (
    Harness,
    _dict_version_reader,
    make_harness,
    take_snapshot,
)
from mallm_envs.sandbox.zygote.landlock import (
    landlock_abi,
    landlock_read_paths,
    landlock_restrict,
    landlock_ruleset,
)
from mallm_envs.sandbox.zygote.linux import (
    F_SETPIPE_SZ,
    PR_SET_PDEATHSIG,
    TYPE_CHECKING,
    _pidfd_open,
    _prctl,
    fork_run,
    resource,
)
from mallm_envs.sandbox.zygote.namespaces import minimal_root

if TYPE_CHECKING:
    from typing import Any


KEPT_FD_BASE, KEPT_FD_COUNT = 900, 8  # descriptors a run keeps (above its channel's 100-899)
RANDOM_SEED = 0  # every run starts the `random` module from this seed: deterministic runs
RLIMIT_FIELDS = ("total_timeout_s", "memory_mb", "max_file_mb", "max_open_files", "max_processes")


PRELOAD = [
    "array",
    "bisect",
    "cmath",
    "collections",
    "collections.abc",
    "copy",
    "enum",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "string",
    "struct",
    "time",
    "typing",
]
"""Imported once by each worker, so programs using them pay nothing (others import as usual)."""


class Compiled:
    modules: tuple[str, ...]
    part_names: tuple[str, ...]
    part_units: tuple[int, ...]
    parts: Any  # a code object
    prelude: Any  # a code object
    snapshot: Any  # see take_snapshot
    __slots__ = ("modules", "part_names", "part_units", "parts", "prelude", "snapshot")


class Server:
    def __init__(
        self, cfg: dict[str, Any], req_fd: int, resp_fd: int, layers: list[str], notes: list[str]
    ) -> None:
        self.cfg = cfg
        self.req_fd = req_fd
        self.resp_fd = resp_fd
        self.layers = layers
        self.notes = notes
        self.pidns = "pidns" in layers
        self.uid: int | None = cfg.get("uid")
        self.gid: int | None = cfg.get("gid")  # set together with uid
        self.userns = "userns" in layers
        self.scratch_root: str = cfg.get("scratch_root")  # type: ignore[assignment]  # checked in setup_filesystem
        self.owner_gone = False  # the judge's end of the request pipe closed: stop at once
        self.wipe_scratch_root = bool(cfg.get("scratch_private"))
        self.cache: dict[str, Compiled] = {}
        self.snapshots: dict[tuple[str, ...], Any] = {}
        self.dict_view = _dict_version_reader()
        self.devnull = os.open("/dev/null", os.O_RDWR)
        self.pristine_builtins = dict(builtins.__dict__)
        self.harness: Harness = None  # type: ignore[assignment]  # made by preload()
        self.landlock_fd: int | None = None
        self.landlock_files = False  # runs can write in their scratch folder only
        self.path_aliases: dict[str, str] = {}  # sys.path folder -> /proc/self/fd/N
        self.run_path: list[str] | None = None  # the runs' sys.path, when it differs
        self.scratch_cap: int | None = None  # set once the scratch folder's place is known
        self.rlimit_cache: dict[tuple[Any, ...], list[tuple[int, tuple[int, int]]]] = {}
        self.view_holders = {  # mount points of the view directly in /tmp (see view.py)
            op[1]
            for op in cfg.get("view", [])
            if op[0] in ("bind", "mask") and os.path.dirname(op[1]) == "/tmp"
        }

    # -- set-up --------------------------------------------------------------------------------

    def setup_filesystem(self) -> None:
        if "mountns" in self.layers and self.cfg.get("minimal_root", True):
            try:
                minimal_root(
                    self.cfg.get("view", []), int(self.cfg.get("scratch_mb", 64)), self.pidns
                )
                self.layers.append("readonly-root")
                self.scratch_root = "/tmp"
                self.wipe_scratch_root = True
            except OSError as e:
                self.notes.append(f"read-only root not set up: {e}")
        if self.scratch_root is None:
            raise RuntimeError("no scratch root configured")
        hidden = [p for p in sys.path if p.endswith("lib-dynload") and not os.path.isdir(p)]
        if hidden:  # e.g. a Python installed under /tmp, which the runs' own /tmp covers
            self.notes.append(f"the standard library is not visible to runs: {hidden[0]}")
        self.layers.append("scratch-dir")
        if not self.wipe_scratch_root:  # on the host's file system, not a private tmpfs:
            self.scratch_cap = int(self.cfg.get("scratch_mb", 64)) << 20  # the server caps it
        scratch = os.path.join(self.scratch_root, "run")
        os.environ.clear()  # what every run sees (set once: changing it per run is costly)
        os.environ.update(
            {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": scratch,
                "TMPDIR": scratch,
                "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0",
                "OMP_NUM_THREADS": "1",  # numerical libraries: one thread, within the limits
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
            }
        )

    def reach_standard_library(self) -> None:
        """Give runs the standard library when their uid cannot walk down to it.

        A Python installed under a private folder (pyenv under ``/root``, mode 0700) is out of
        the sandbox uid's reach without a private root. The server, still root, opens each
        such ``sys.path`` folder and runs import through ``/proc/self/fd/N`` instead, which
        skips the folders above it. Only under Landlock's file rules: without them the same
        descriptor would also lead to the installation's site-packages.
        """
        if self.uid is None or "readonly-root" in self.layers:
            return
        closed = [p for p in sys.path if p and os.path.isdir(p) and not _searchable_by_others(p)]
        if not closed:
            return
        if self.landlock_files:
            for i, path in enumerate(closed[:KEPT_FD_COUNT]):
                try:
                    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError:
                    continue
                os.dup2(fd, KEPT_FD_BASE + i, inheritable=False)
                os.close(fd)
                self.path_aliases[path] = f"/proc/self/fd/{KEPT_FD_BASE + i}"
        if self.path_aliases:
            self.run_path = [self.path_aliases.get(p, p) for p in sys.path]
        unreached = [p for p in closed if p not in self.path_aliases]
        if unreached:
            self.notes.append(
                f"the runs' uid cannot reach the standard library at {unreached[0]}: programs "
                "can import only the preloaded modules (install Python where every user "
                "can read it, or let the judge use namespaces or Landlock)"
            )

    def setup_landlock(self) -> None:
        """Landlock for what the namespaces do not cover: files, TCP, signals (Linux 5.13+).

        Without a private root (no mount namespace, e.g. a container that forbids
        ``unshare``), a run could otherwise read any file its uid can (an installed
        benchmark's answers) and, as the caller's own uid, write to them; without a network
        or PID namespace it could connect out or signal the caller. The server builds one
        ruleset and every run enters it before its program starts; the server itself stays
        outside, so it can still clean up and kill.
        """
        if self.cfg.get("outer") or self.cfg.get("landlock") is False:
            return
        fs = "readonly-root" not in self.layers
        tcp = "netns" not in self.layers
        scopes = "pidns" not in self.layers
        if not (fs or tcp or scopes):
            return
        abi = landlock_abi()
        if abi < 1:
            self.notes.append(
                "Landlock unavailable (kernel older than 5.13, not enabled, or blocked)"
            )
            return
        if "no-new-privs" not in self.layers:
            self.notes.append("Landlock needs no_new_privs")
            return
        tcp = tcp and abi >= 4
        scopes = scopes and abi >= 6
        if not (fs or tcp or scopes):
            return
        try:
            reads = landlock_read_paths(self.cfg.get("view", [])) if fs else []
            self.landlock_fd = landlock_ruleset(
                abi, reads, [self.scratch_root], fs=fs, tcp=tcp, scopes=scopes
            )
        except OSError as e:
            self.notes.append(f"Landlock not set up: {e}")
            return
        self.landlock_files = fs
        self.layers.extend(
            name
            for name, on in (
                ("landlock-fs", fs),
                ("landlock-tcp", tcp),
                ("landlock-signals", scopes),
            )
            if on
        )

    def fill_import_caches(self) -> None:
        """List every folder of the runs' ``sys.path`` now, into importlib's finder caches.

        Under Landlock a folder that holds a hidden one (a pyenv standard library holding
        ``site-packages``) cannot be listed by runs, only its other entries read; a finder
        that listed it here keeps finding modules there (it lists again only when the folder
        changes).
        """
        if not self.landlock_files:
            return
        import importlib.util

        saved = sys.path[:]
        sys.path[:] = self.run_path or saved
        try:
            importlib.util.find_spec("__mallm_no_such_module__")
        except Exception as e:  # an optimisation of imports: never fatal
            self.notes.append(f"import caches not filled: {type(e).__name__}")
        finally:
            sys.path[:] = saved

    def preload(self) -> None:
        for name in self.cfg.get("preload", PRELOAD):
            try:
                __import__(name)
            except Exception as e:
                self.notes.append(f"preload {name}: {type(e).__name__}")
        self.fill_import_caches()
        self.harness = make_harness()
        if self.dict_view is None:
            self.notes.append("dict version tags unavailable: slower monkeypatch detection")
        for _ in range(3):  # warm the compiler and the allocator before forking
            compile("def f(x):\n    return [i * x for i in range(3)]\n", "<warm>", "exec")
        self.warm_up_harness()
        import random

        random.seed(RANDOM_SEED)  # once: runs are forked without at-fork hooks (fork_run)
        gc.collect()
        gc.freeze()

    def warm_up_harness(self) -> None:
        """Run the harness here on the judge's warm-up suite, with a program of our own.

        CPython specialises bytecode in place as it runs (3.11+): a run that starts with the
        harness already specialised neither pays for that nor copies the pages it would
        write. Nothing of the warm-up stays: its suite leaves the cache and its records go
        to a pipe that is then closed.
        """
        warm = self.cfg.get("warmup")
        if not warm:
            return
        try:
            compiled = self.compiled("warm-up", warm["suite"])
            read, write = os.pipe()
        except Exception as e:  # a warm-up is an optimisation: never fatal
            self.notes.append(f"harness warm-up skipped: {type(e).__name__}")
            return
        try:
            os.set_blocking(read, False)
            with contextlib.suppress(OSError):
                fcntl.fcntl(write, F_SETPIPE_SZ, 1 << 20)
            job = {"program": warm["program"], "entry": warm["entry"], "start": 0}
            job["limits"] = warm["limits"]
            for _ in range(20):
                self.harness.run(
                    job,
                    write,
                    "0" * 16,
                    self.pristine_builtins,
                    compiled,
                    compiled.snapshot,  # type: ignore[union-attr]
                )
                while _read_some(read):
                    pass
        except Exception as e:
            self.notes.append(f"harness warm-up failed: {type(e).__name__}")
        finally:
            os.close(read)
            os.close(write)
            self.cache.pop("warm-up", None)

    # -- serving -------------------------------------------------------------------------------

    def serve(self) -> None:
        write_frame(
            self.resp_fd,
            {
                "hello": {
                    "pid": os.getpid(),
                    "layers": self.layers,
                    "notes": self.notes,
                    "python": sys.version.split()[0],
                }
            },
        )
        while True:
            req = read_frame(self.req_fd)
            if req is None:
                return
            try:
                resp = self.handle(req)
            except Exception as e:  # a server bug: report it, keep serving
                resp = {"id": req.get("id"), "infra": f"{type(e).__name__}: {e}"}
            if self.owner_gone:  # nobody to answer: the run is killed and swept; exit
                return
            write_frame(self.resp_fd, resp)

    def compiled(self, key: str, suite: dict[str, Any] | None) -> Compiled | None:
        found = self.cache.get(key)
        if found is not None:
            return found
        if suite is None:
            return None
        c = Compiled()
        c.prelude = compile(suite["prelude"], "<test-prelude>", "exec", dont_inherit=True)
        c.modules = tuple(suite["modules"])
        c.part_names = tuple(p["name"] for p in suite["parts"])
        c.part_units = tuple(p["units"] for p in suite["parts"])
        parts_src = "\n".join(p["source"] for p in suite["parts"])
        c.parts = compile(parts_src, "<tests>", "exec", dont_inherit=True)
        known = len(sys.modules)
        for name in c.modules:  # import what the tests import now, so the snapshot covers it
            with contextlib.suppress(Exception):
                __import__(name)
        if len(sys.modules) != known:
            # An import can change modules that earlier snapshots watch (importing xml.dom
            # adds `dom` to the dict of xml): take every snapshot again, so that an honest
            # run is never reported as tampering.
            self.snapshots.clear()
            for other in self.cache.values():
                other.snapshot = self.snapshot_of(other.modules)
        c.snapshot = self.snapshot_of(c.modules)
        if len(self.cache) >= 512:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = c
        gc.freeze()
        return c

    def snapshot_of(self, modules: tuple[str, ...]) -> Any:
        found = self.snapshots.get(modules)
        if found is None:
            found = self.snapshots[modules] = take_snapshot(modules, self.dict_view)
        return found

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        compiled = self.compiled(req["key"], req.get("suite"))
        if compiled is None:  # the judge sends each suite once; ask again if it was evicted
            return {"id": req["id"], "need_suite": req["key"]}
        limits = req["limits"]
        n = sum(compiled.part_units)
        units: list[Any] = [None] * n
        t0 = time.monotonic()
        total_deadline = t0 + limits["total_timeout_s"]
        out = Output(limits["max_output_bytes"])
        load = None
        tampered = None
        runs = 0
        start = 0
        notes: list[str] = []
        while True:
            runs += 1
            run = self.run_once(req, compiled, start, limits, total_deadline, out)
            notes.extend(run.notes)
            for u, payload in run.units:
                units[u] = payload
            if load is None:
                load = run.load if run.load is not None else {"z": run.end, "info": run.info}
            if run.tampered is not None:
                tampered = run.tampered
                break
            if self.owner_gone:
                break
            if run.end == "done" or not load.get("ok"):
                break
            k = next((i for i in range(start, n) if units[i] is None), None)
            if k is None:
                break
            if run.phase == "replay":  # the dry replay of earlier units failed: stop here
                for i in range(k, n):
                    units[i] = {"z": run.end, "info": run.info, "replay": True}
                break
            units[k] = {"z": run.end, "info": run.info}
            start = k + 1
            if start >= n:
                break
            if time.monotonic() >= total_deadline:
                for i in range(start, n):
                    units[i] = {"z": "budget", "info": None}
                break
        return {
            "id": req["id"],
            "load": load,
            "units": units,
            "tampered": tampered,
            "output": out.data.decode("utf-8", "replace"),
            "dropped": out.dropped,
            "runs": runs,
            "elapsed": time.monotonic() - t0,
            "notes": notes,
        }

    def make_scratch(self) -> str:
        path = os.path.join(self.scratch_root, "run")
        if os.path.lexists(path):
            _remove_tree(path)
        os.mkdir(path, 0o700)
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)  # type: ignore[arg-type]  # set with uid
        return path

    def wipe_scratch(self, path: str) -> None:
        if self.wipe_scratch_root:
            for name in os.listdir(self.scratch_root):
                entry = os.path.join(self.scratch_root, name)
                if entry not in self.view_holders:  # read-only parts of the view: keep
                    _remove_tree(entry)
        else:
            _remove_tree(path)
        if self.uid is not None and not self.wipe_scratch_root and not self.landlock_files:
            # No private /tmp: remove what the sandbox uid left in the world-writable folders
            # (with Landlock's file rules a run cannot write there in the first place).
            for folder in ("/tmp", "/var/tmp", "/dev/shm"):
                try:
                    with os.scandir(folder) as it:
                        left = [
                            e.path for e in it if e.stat(follow_symlinks=False).st_uid == self.uid
                        ]
                except OSError:
                    continue
                for entry in left:
                    _remove_tree(entry)

    def run_once(
        self,
        req: dict[str, Any],
        compiled: Compiled,
        start: int,
        limits: dict[str, Any],
        total_deadline: float,
        out: Output,
    ) -> Run:
        """Fork one run from unit `start`; watch it until it reports "done", exits or is killed.

        The server sleeps on the run's pidfd and output pipe only: test records pile up in the
        (enlarged) channel pipe and are read when the run exits or on a short tick, so a grade
        costs the server one or two wake-ups instead of one per test. A test's deadline counts
        from the tick at which the previous test's record was seen (at most one tick late).
        """
        result = Run()
        scratch = self.make_scratch()
        chan_r, chan_w = os.pipe()
        out_r, out_w = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(chan_w, F_SETPIPE_SZ, 1 << 20)
        nonce = os.urandom(8).hex()
        rlimits = self.rlimits(limits)
        job = {
            "program": req["program"],
            "entry": req["entry"],
            "limits": limits,
            "start": start,
        }
        # Everything the server needs while the run lives is made before the fork: after it,
        # each page the server writes is copied while the child still shares it.
        os.set_blocking(chan_r, False)
        os.set_blocking(out_r, False)
        poller = select.poll()
        poller.register(out_r, select.POLLIN)
        # The judge writes nothing while a grade runs; a hang-up here means it died (even by
        # SIGKILL): the run must not outlive it, nor may further runs start.
        poller.register(self.req_fd, 0)
        reader = Records(nonce, limits["max_record_bytes"])
        phase = "load"
        expect_unit = start
        timeout = limits["timeout_s"]
        tick = min(0.1, max(0.005, timeout / 10))
        exited = False
        out_open = True
        killed_by_us: str | None = None
        status: int | None = None
        pidfd: int | None = None
        pid = fork_run()
        if pid == 0:  # --- the run child ---------------------------------------------------
            status = EXIT_SETUP_FAILED
            try:
                chan = self.enter_run(scratch, rlimits, chan_r, chan_w, out_r, out_w)
                status = 0
            except BaseException:
                os._exit(EXIT_SETUP_FAILED)
            try:
                self.harness.run(
                    job, chan, nonce, self.pristine_builtins, compiled, compiled.snapshot
                )
            finally:
                os._exit(status)
        # --- the server side ------------------------------------------------------------------
        # Until the server sleeps, every page it writes is copied (the run still shares it):
        # write as little as possible here, and close the run's pipe ends after the first wake.
        try:
            pidfd = _pidfd_open(pid)  # type: ignore[misc]  # None only before Python 3.9
            poller.register(pidfd, select.POLLIN)
        except (AttributeError, OSError):
            pass
        started = time.monotonic()  # when the current phase/unit was first seen running
        write_ends: tuple[int, ...] = (chan_w, out_w)
        try:
            while True:
                now = time.monotonic()
                deadline = min(started + timeout, total_deadline)
                wait = min(deadline, now + tick) - now
                events = poller.poll(max(0, int(wait * 1000)) + 1) if wait > 0 else []
                if write_ends:
                    for fd in write_ends:
                        os.close(fd)
                    write_ends = ()
                for fd, _ev in events:
                    if fd == out_r:
                        if out.read(out_r) is False:
                            poller.unregister(out_r)
                            out_open = False
                    elif fd == pidfd:
                        exited = True
                    elif fd == self.req_fd:
                        self.owner_gone = True
                if pidfd is None and not exited:
                    wpid, wstatus = os.waitpid(pid, os.WNOHANG)
                    if wpid:
                        status = wstatus
                        exited = True
                while True:  # whatever the run has written so far
                    data = _read_some(chan_r)
                    if not data:
                        break
                    reader.feed(data)
                if exited and out_open:  # drain what is there; a leftover process may hold it open
                    while out.read(out_r):
                        pass
                now = time.monotonic()
                for kind, body in reader.take():
                    if kind == "load" and phase == "load":
                        result.load = body
                        phase = "replay" if start > 0 else "units"
                    elif kind == "replayed" and phase == "replay":
                        phase = "units"
                    elif (
                        kind == "unit"
                        and phase == "units"
                        and isinstance(body, dict)
                        and body.get("u") == expect_unit
                    ):
                        result.units.append((expect_unit, body))
                        expect_unit += 1
                    elif kind == "done" and phase in ("units", "load"):
                        phase = "done"
                        if isinstance(body, dict) and "tampered" in body:
                            result.tampered = str(body["tampered"])
                    else:
                        reader.error = f"unexpected {kind!r} record in phase {phase!r}"
                        break
                    started = now
                if reader.error is not None:
                    result.tampered = result.tampered or f"the result channel: {reader.error}"
                    break
                load_failed = result.load is not None and not result.load.get("ok")
                if phase == "done" or exited or load_failed:
                    break
                if self.owner_gone:
                    killed_by_us = "owner"
                    break
                if out.overflowed_hard:
                    killed_by_us = "output"
                    break
                if self.scratch_cap and _tree_bytes(scratch, self.scratch_cap) > self.scratch_cap:
                    killed_by_us = "disk"  # checked on each wake-up (a tick at most apart)
                    break
                if now >= deadline:
                    killed_by_us = "timeout" if started + timeout <= total_deadline else "budget"
                    break
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            if status is None:
                status = os.waitpid(pid, 0)[1]
            self.sweep(result)
            for left_open in (chan_r, out_r, pidfd, *write_ends):
                if left_open is not None:
                    os.close(left_open)
            self.wipe_scratch(scratch)
        result.phase = phase
        if phase == "done" or (result.load is not None and not result.load.get("ok")):
            result.end = "done"
        elif killed_by_us is not None:
            result.end = killed_by_us
        else:
            result.end, result.info = _classify_exit(status)
        return result

    def enter_run(
        self,
        scratch: str,
        rlimits: list[tuple[int, tuple[int, int]]],
        chan_r: int,
        chan_w: int,
        out_r: int,
        out_w: int,
    ) -> int:
        """In the forked child: new session, fds, limits, privileges. Returns the channel fd."""
        os.close(chan_r)
        os.close(out_r)
        os.setsid()
        if self.landlock_fd is not None:  # first: no dup2 below can land on its descriptor
            landlock_restrict(self.landlock_fd)  # failing stops the run (an infra error)
        if not self.pidns:  # in a PID namespace every run dies with the server (its init)
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.dup2(self.devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        chan = 100 + int.from_bytes(os.urandom(2), "big") % 800
        os.dup2(chan_w, chan, inheritable=False)
        os.closerange(3, chan)
        if self.path_aliases:  # keep the descriptors that lead to the standard library
            os.closerange(chan + 1, KEPT_FD_BASE)
            os.closerange(KEPT_FD_BASE + KEPT_FD_COUNT, 1 << 16)
        else:
            os.closerange(chan + 1, 1 << 16)
        os.chdir(scratch)
        os.umask(0o077)
        setrlimit = resource.setrlimit
        for which, value in rlimits:
            setrlimit(which, value)
        if self.uid is not None:  # leaving root also clears every capability
            os.setgroups([])
            os.setresgid(self.gid, self.gid, self.gid)  # type: ignore[arg-type]  # with uid
            os.setresuid(self.uid, self.uid, self.uid)
        if self.run_path is not None:
            sys.path[:] = self.run_path
        return chan

    def rlimits(self, limits: dict[str, Any]) -> list[tuple[int, tuple[int, int]]]:
        """The (resource, (soft, hard)) pairs a run gets, within the server's own hard limits."""
        key = tuple(limits[k] for k in RLIMIT_FIELDS)
        found = self.rlimit_cache.get(key)
        if found is not None:
            return found
        cpu = int(limits["total_timeout_s"]) + 1
        out = []
        for which, value in (
            (resource.RLIMIT_CORE, 0),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, int(limits["memory_mb"]) << 20),
            (resource.RLIMIT_FSIZE, int(limits["max_file_mb"]) << 20),
            (resource.RLIMIT_NOFILE, int(limits["max_open_files"])),
            (resource.RLIMIT_NPROC, int(limits["max_processes"])),
        ):
            soft, hard = value if isinstance(value, tuple) else (value, value)
            _, old_hard = resource.getrlimit(which)
            if old_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, old_hard), min(hard, old_hard)
            out.append((which, (soft, hard)))
        if len(self.rlimit_cache) >= 64:
            self.rlimit_cache.clear()
        self.rlimit_cache[key] = out
        return out

    def sweep(self, result: Run) -> None:
        """Kill and reap every process the run left behind (they are all our children by now)."""
        for attempt in range(200):
            try:
                wpid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if wpid != 0:
                continue
            if attempt == 0:
                result.notes.append("the run left processes behind; killed them")
            if self.pidns and os.getpid() == 1:
                with contextlib.suppress(OSError):
                    os.kill(-1, signal.SIGKILL)  # from the namespace's init: all but us
            elif self.uid is not None:
                helper = os.fork()
                if helper == 0:
                    try:
                        os.setresuid(self.uid, self.uid, self.uid)
                        os.kill(-1, signal.SIGKILL)
                    finally:
                        os._exit(0)
                os.waitpid(helper, 0)
            else:
                for child in _children_of(os.getpid()):
                    with contextlib.suppress(OSError):
                        os.kill(child, signal.SIGKILL)
            time.sleep(0.002)
        result.notes.append("processes left by the run could not all be reaped")


class Run:
    """What one forked run produced."""

    def __init__(self) -> None:
        self.load: dict[str, Any] | None = None
        self.units: list[tuple[int, Any]] = []
        self.end = "done"
        self.info: object = None
        self.phase = "load"
        self.tampered: str | None = None
        self.notes: list[str] = []


class Output:
    """The run's stdout+stderr: keep the first `cap` bytes, count (and drain) the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0
        self.overflowed_hard = False

    def read(self, fd: int) -> bool | None:
        """Read one chunk: True (got data), None (nothing now), False (end of file)."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            return False
        if not chunk:
            return False
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))
        if self.dropped > 64 << 20:  # 64 MiB beyond the cap: stop draining, end the run
            self.overflowed_hard = True
        return True


class Records:
    """Parse the run's result channel: framed JSON records carrying the run's nonce in order."""

    def __init__(self, nonce: str, max_bytes: int) -> None:
        self.nonce = nonce
        self.max_bytes = max_bytes
        self.buf = bytearray()
        self.seq = 0
        self.ready: list[tuple[str, Any]] = []
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        self.buf += data
        while len(self.buf) >= 4:
            size = int.from_bytes(self.buf[:4], "big")
            if size > self.max_bytes:
                self.error = f"a record of {size} bytes"
                return
            if len(self.buf) < 4 + size:
                return
            raw = bytes(self.buf[4 : 4 + size])
            del self.buf[: 4 + size]
            try:
                rec = json.loads(raw)
                ok = (
                    isinstance(rec, list)
                    and len(rec) == 4
                    and rec[0] == self.nonce
                    and rec[1] == self.seq
                    and isinstance(rec[2], str)
                )
            except ValueError:
                ok = False
            if not ok:
                self.error = "a malformed or forged record"
                return
            self.seq += 1
            self.ready.append((rec[2], rec[3]))

    def take(self) -> list[tuple[str, Any]]:
        out, self.ready = self.ready, []
        return out


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""
    except OSError:
        return b""


def _classify_exit(status: int | None) -> tuple[str, object]:
    if status is None:
        return "crash", None
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return "cpu", None
        return "signal", signal.Signals(
            sig
        ).name if sig in signal.Signals._value2member_map_ else sig
    code = os.WEXITSTATUS(status)
    if code == EXIT_SETUP_FAILED:
        return "setup", None
    if code == EXIT_CHANNEL_LOST:
        return "channel", None
    return "exit", code


def _children_of(ppid: int) -> list[int]:
    kids: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return kids
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[1]) == ppid:
                kids.append(int(name))
        except (OSError, ValueError):
            continue
    return kids


def _tree_bytes(path: str, cap: int) -> int:
    """Disk use of a folder tree (each entry at least one block), counted until past `cap`."""
    total = 0
    stack = [path]
    while stack and total <= cap:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += max(4096, st.st_blocks * 512)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    if total > cap:
                        break
        except OSError:
            continue
    return total


def _searchable_by_others(path: str) -> bool:
    """Whether a uid with no special rights can walk down to `path` (o+x on the way)."""
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & 0o001:
                return False
        except OSError:
            return True  # a missing sys.path entry (e.g. pythonXY.zip): nothing to reach
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _remove_tree(path: str) -> None:
    """rm -rf that also copes with folders a run made unreadable (chmod 000)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat as stat_mod

    if stat_mod.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        try:
            names = os.listdir(path)
        except OSError:
            names = []
        for name in names:
            _remove_tree(os.path.join(path, name))
        with contextlib.suppress(OSError):
            os.rmdir(path)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
