"""Fork server of :mod:`mallm_envs.sandbox` (one per worker slot; see the package docstring).

This file runs as its own interpreter without ``site`` (``python -s -S``), started by
``judge.py``, which compiles it and sends the code object (marshal) on the worker's stdin to a
small ``-c`` stub, or, for an interpreter with another bytecode format, runs it as a script. It
imports the standard library only and is never imported by the library. It has two roles:

* the **server** (trusted, never runs candidate code): it sets up the namespaces and the
  read-only file-system view once, pre-imports modules, then for each request forks a run,
  watches it (wall clock, output cap, result channel), kills the run's whole process tree and
  wipes its scratch directory, and answers the judge with the raw per-test records;
* the **run** child (untrusted from the moment the candidate's program starts): it applies the
  limits, drops privileges, loads the program, runs the test units and writes plain-data
  records to a private pipe. Everything the run needs was captured in closures *before* the
  candidate's code could touch it.

Protocol with the judge: frames of a 4-byte big-endian length and a UTF-8 JSON document, on the
server's stdin (requests; after the compiled worker code) and stdout (answers). The first
answer is a ``hello`` describing the isolation layers that are active.

Cost of a run, and what keeps it down: a run is a ``fork`` of this server, so it pays for the
page-table copy, its exit, and a copy of every page it writes (CPython's reference counts
write to every object a run touches). Hence: the server's heap is kept small (no ``site``, its
own code arrives compiled), the harness is warmed up before the first fork (specialised
bytecode is not rewritten in each run), runs are forked without Python's at-fork hooks, the
server writes as little as possible between the fork and its sleep, and it wakes only once
the run has exited, when writing its pages no longer copies them.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import gc
import json
import json.encoder
import os
import select
import signal
import sys
import time

try:  # resource is Linux/Unix-only; without it the server refuses to start (see judge.py)
    import resource
except ImportError:  # pragma: no cover - not a Linux host
    resource = None  # type: ignore[assignment]

if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]  # the package's own folder must not be importable by candidates

# --- Linux constants (values from <sched.h>, <sys/mount.h>, <sys/prctl.h>) --------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2

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

KEPT_FD_BASE, KEPT_FD_COUNT = 900, 8  # descriptors a run keeps (above its channel's 100-899)
EXIT_SETUP_FAILED = 72  # the run could not apply its limits: an infrastructure error
EXIT_CHANNEL_LOST = 71  # the run could not write to its result channel
RANDOM_SEED = 0  # every run starts the `random` module from this seed: deterministic runs
RLIMIT_FIELDS = ("total_timeout_s", "memory_mb", "max_file_mb", "max_open_files", "max_processes")


def _libc():
    """The C library through ctypes, or None where ctypes or the library is missing."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:  # pragma: no cover - exotic platforms
        return None


LIBC = _libc()


def _raw_fork():
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
    pid = _FORK()
    if pid < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"fork: {os.strerror(err)}")
    return pid


def _call(name: str, *args) -> None:
    """Call a libc function that returns -1 on failure; raise OSError with errno."""
    import ctypes

    fn = getattr(LIBC, name)
    if fn(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def _syscall(name: str, *args) -> None:
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


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None):
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    _call("mount", enc[0], enc[1], enc[2], flags, enc[3])


def _drop_capabilities() -> None:
    """Clear the effective, permitted and inheritable capability sets (capset v3)."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    if hasattr(LIBC, "capset"):
        _call("capset", header, data)
    else:  # pragma: no cover - libc without the wrapper
        _syscall("capset", header, data)


# --- framing -------------------------------------------------------------------------------


def read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        try:
            chunk = os.read(fd, min(n, 1 << 20))
        except InterruptedError:  # pragma: no cover - PEP 475 retries already
            continue
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int):
    head = read_exact(fd, 4)
    if head is None:
        return None
    body = read_exact(fd, int.from_bytes(head, "big"))
    if body is None:
        return None
    return json.loads(body)


def write_frame(fd: int, obj) -> None:
    body = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    data = len(body).to_bytes(4, "big") + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- the run's harness ------------------------------------------------------------------------


def make_harness():
    """Build the code a run executes, capturing every reference before any candidate runs.

    The candidate shares the run's process, so it can rebind module attributes (``json.dumps``,
    ``builtins.len``, attributes of this module). The harness therefore only uses references held
    in this closure, takes type names and exception arguments through the base types' C slots
    (never calling a method the candidate could define), and ships *values*, never verdicts.
    """
    _type = type
    _len = len
    _id = id
    _map = map
    _zip = zip
    _tuple = tuple
    _list = list
    _dict = dict
    _set = set
    _frozenset = frozenset
    _range = range
    _int = int
    _float = float
    _complex = complex
    _str = str
    _bytes = bytes
    _bytearray = bytearray
    _bool = bool
    _callable = callable
    _issubclass = issubclass
    _exec = exec
    _compile = compile
    _next = next
    _import = builtins.__import__
    _BaseException = BaseException
    _StopIteration = StopIteration
    _MemoryError = MemoryError
    _write = os.write
    _clock = time.perf_counter
    _getpid = os.getpid
    _exit = os._exit
    _join = ",".join
    _enc_str = json.encoder.encode_basestring_ascii
    _int_repr = int.__repr__
    _float_repr = float.__repr__
    _int_hex = int.__format__
    _bytes_hex = bytes.hex
    _bytearray_hex = bytearray.hex
    _int_bits = int.bit_length
    _str_copy = str.__str__
    _int_copy = int.__int__
    _float_copy = float.__float__
    _bytes_copy = bytes.__bytes__ if hasattr(bytes, "__bytes__") else bytes
    _bytearray_copy = bytearray.copy
    _complex_real = complex.real.__get__
    _complex_imag = complex.imag.__get__
    _list_iter = list.__iter__
    _tuple_iter = tuple.__iter__
    _set_iter = set.__iter__
    _frozenset_iter = frozenset.__iter__
    _dict_items = dict.items
    _dict_get = dict.get
    _range_start = range.start.__get__
    _range_stop = range.stop.__get__
    _range_step = range.step.__get__
    _type_name = type.__dict__["__name__"].__get__
    _exc_args = BaseException.__dict__["args"].__get__
    _modules = sys.modules
    _builtin_classes = {
        name: value
        for name, value in builtins.__dict__.items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    _stdout = sys.stdout
    _stderr = sys.stderr

    class NotPlain(Exception):
        """A value is not plain data (raised with the offending type's name)."""

    class State:
        __slots__ = (
            "budget",
            "dry",
            "exc",
            "failed",
            "max_checks",
            "max_unit_bytes",
            "max_value_bytes",
            "nodes",
            "reports",
            "unit_bytes",
        )

    state = State()
    state.dry = False
    state.failed = False
    state.reports = []
    state.exc = None
    state.budget = 0
    state.nodes = 0
    state.max_checks = 10_000
    state.max_value_bytes = 1 << 20
    state.unit_bytes = 0
    state.max_unit_bytes = 8 << 20

    def type_name(obj) -> str:
        try:
            return _str_copy(_type_name(_type(obj)))[:80]
        except _BaseException:
            return "?"

    def spend(n: int) -> None:
        state.nodes += 1
        state.budget -= n
        if state.budget < 0:
            raise NotPlain("value too large")

    def plain(v, depth: int = 0):
        """An exact-typed deep copy of plain data, or NotPlain; never runs candidate methods."""
        t = _type(v)
        if v is None or t is _bool:
            spend(1)
            return v
        if t is _int:
            spend(1 + (_int_bits(v) >> 3))
            return v
        if t is _float:
            spend(8)
            return v
        if t is _str:
            spend(1 + _len(v))
            return v
        if depth > 100:
            raise NotPlain("value nested too deeply")
        d = depth + 1
        if t is _list:
            spend(1)
            return [plain(x, d) for x in v]
        if t is _tuple:
            spend(1)
            return _tuple([plain(x, d) for x in v])
        if t is _dict:
            spend(1)
            return {plain(k, d): plain(x, d) for k, x in _dict_items(v)}
        if t is _set:
            spend(1)
            return _set([plain(x, d) for x in v])
        if t is _frozenset:
            spend(1)
            return _frozenset([plain(x, d) for x in v])
        if t is _bytes:
            spend(1 + _len(v))
            return v
        if t is _complex:
            spend(16)
            return v
        if t is _range:
            spend(3)
            return v
        if t is _bytearray:
            spend(1 + _len(v))
            return _bytearray_copy(v)
        # Subclasses of plain types (namedtuple, Counter, IntEnum, numpy-free float subclasses):
        # copy their underlying builtin value through the base type's C slots, so an overridden
        # __eq__/__iter__/__str__ never runs and never reaches the comparison.
        if _issubclass(t, _bool):  # pragma: no cover - bool cannot be subclassed
            raise NotPlain(type_name(v))
        if _issubclass(t, _int):
            return plain(_int_copy(v), depth)
        if _issubclass(t, _float):
            return plain(_float_copy(v), depth)
        if _issubclass(t, _str):
            return plain(_str_copy(v), depth)
        if _issubclass(t, _bytes):
            return plain(_bytes_copy(v), depth)
        if _issubclass(t, _complex):
            return _complex(_complex_real(v), _complex_imag(v))
        if _issubclass(t, _list):
            spend(1)
            return [plain(x, d) for x in _list_iter(v)]
        if _issubclass(t, _tuple):
            spend(1)
            return _tuple([plain(x, d) for x in _tuple_iter(v)])
        if _issubclass(t, _dict):
            spend(1)
            return {plain(k, d): plain(x, d) for k, x in _dict_items(v)}
        if _issubclass(t, _set):
            spend(1)
            return _set([plain(x, d) for x in _set_iter(v)])
        if _issubclass(t, _frozenset):
            spend(1)
            return _frozenset([plain(x, d) for x in _frozenset_iter(v)])
        if _issubclass(t, _bytearray):
            return plain(_bytearray_copy(v), depth)
        raise NotPlain(type_name(v))

    def dump(v) -> str:
        """JSON text of an exact-typed plain value (the output of `plain`); tags in sandbox/values.py."""
        t = _type(v)
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if t is _int:
            if _int_bits(v) > 12_000:  # beyond int->str's default digit limit: send hex
                return '{"i":"' + _int_hex(v, "x") + '"}'
            return _int_repr(v)
        if t is _float:
            if v != v:
                return '{"n":"nan"}'
            if v == 1e999:
                return '{"n":"inf"}'
            if v == -1e999:
                return '{"n":"-inf"}'
            return _float_repr(v)
        if t is _str:
            return _enc_str(v)
        if t is _list:
            return "[" + _join(_map(dump, v)) + "]"
        if t is _tuple:
            return '{"t":[' + _join(_map(dump, v)) + "]}"
        if t is _dict:
            return (
                '{"d":[' + _join(["[" + dump(k) + "," + dump(x) + "]" for k, x in v.items()]) + "]}"
            )
        if t is _set:
            return '{"s":[' + _join(_map(dump, v)) + "]}"
        if t is _frozenset:
            return '{"f":[' + _join(_map(dump, v)) + "]}"
        if t is _bytes:
            return '{"b":"' + _bytes_hex(v) + '"}'
        if t is _bytearray:
            return '{"y":"' + _bytearray_hex(v) + '"}'
        if t is _complex:
            return '{"c":[' + dump(_complex_real(v)) + "," + dump(_complex_imag(v)) + "]}"
        if t is _range:
            parts = (_range_start(v), _range_stop(v), _range_step(v))
            return '{"r":[' + _join(_map(_int_repr, parts)) + "]}"
        raise NotPlain(type_name(v))

    def encode(v, max_bytes: int) -> str:
        state.budget = max_bytes
        state.nodes = 0
        return dump(plain(v))

    def exc_info(e) -> str:
        """JSON text describing an exception: type name, plain args, memory and builtin flags."""
        name = type_name(e)
        try:
            args = encode(_exc_args(e), 2000)
        except _BaseException:
            args = "null"
        mem = "true" if _issubclass(_type(e), _MemoryError) else "false"
        builtin = "true" if _dict_get(_builtin_classes, name) is _type(e) else "false"
        return '{"t":' + _enc_str(name) + ',"a":' + args + ',"m":' + mem + ',"b":' + builtin + "}"

    def make_wrapper(fn, max_bytes: int):
        """What test code calls instead of the candidate: the result comes back as plain data."""

        def candidate(*args, **kwargs):
            result = fn(*args, **kwargs)
            state.budget = max_bytes
            return plain(result)

        return candidate

    def check(site, *thunks):
        """Called where the test had an assert: evaluate each side, record plain values."""
        if state.dry or state.failed:
            return
        if _len(state.reports) >= state.max_checks:
            state.failed = True
            state.reports.append("[" + _int_repr(site) + ",null,null,null,1]")
            return
        values = []
        for thunk in thunks:
            try:
                value = thunk()
            except NotPlain as np:
                state.failed = True
                state.reports.append(
                    f"[{_int_repr(site)},null,null,{_enc_str(_str_copy(np.args[0]))}]"
                )
                return
            except _BaseException as e:
                state.failed = True
                state.reports.append(f"[{_int_repr(site)},null,{exc_info(e)}]")
                return
            try:
                values.append(encode(value, state.max_value_bytes))
            except NotPlain as np:
                state.failed = True
                state.reports.append(
                    f"[{_int_repr(site)},null,null,{_enc_str(_str_copy(np.args[0]))}]"
                )
                return
            except _BaseException as e:
                state.failed = True
                state.reports.append(f"[{_int_repr(site)},null,{exc_info(e)}]")
                return
        text = f"[{_int_repr(site)},[{_join(values)}]]"
        state.unit_bytes += _len(text)
        if state.unit_bytes > state.max_unit_bytes:  # keep the record under the channel's cap
            state.failed = True
            text = "[" + _int_repr(site) + ",null,null,null,2]"
        state.reports.append(text)

    def raised(e) -> None:
        """Called when a test unit's own statements raised (outside any checked expression)."""
        if state.dry:
            return
        if state.exc is None:
            state.exc = exc_info(e)

    def tampered(snap):
        """Name of the first watched dict that changed since the snapshot, or None."""
        names, tags = snap
        for name, mod in names:
            if _dict_get(_modules, name) is not mod:
                return f"sys.modules[{name!r}]"
        for label, _keep, read, tag, version in tags:
            if read(tag) != version:
                return label
        return None

    def run(job, chan: int, nonce: str, pristine_builtins: dict, compiled, snap) -> None:
        """Load the program, replay earlier units dry, run the rest; report on `chan`."""
        seq = [0]
        me = _getpid()

        def send(kind: str, body: str) -> None:
            if _getpid() != me:  # a fork of the run (os.fork in the program) never reports
                _exit(0)
            text = f'["{nonce}",{_int_repr(seq[0])},"{kind}",{body}]'
            seq[0] += 1
            data = _len(text).to_bytes(4, "big") + text.encode("ascii")
            try:
                while data:
                    data = data[_write(chan, data) :]
            except _BaseException:
                _exit(EXIT_CHANNEL_LOST)

        limits = job["limits"]
        state.max_value_bytes = limits["max_value_bytes"]
        state.max_checks = limits["max_checks_per_test"]
        state.max_unit_bytes = limits["max_record_bytes"] // 2
        start = job["start"]
        test_ns = {"__builtins__": pristine_builtins, "__name__": "__mallm_tests__"}
        test_ns["__mallm_check__"] = check
        test_ns["__mallm_raised__"] = raised
        try:
            _exec(compiled.prelude, test_ns)
            _exec(compiled.parts, test_ns)
            for name in compiled.modules:
                try:  # noqa: SIM105 - the harness avoids contextlib: a program could patch it
                    _import(name)
                except ImportError:
                    pass
        except _BaseException as e:
            send("load", '{"ok":false,"stage":"prelude","exc":' + exc_info(e) + "}")
            return
        part_fns = [test_ns[name] for name in compiled.part_names]
        candidate = None
        program = job["program"]
        if program is not None:
            prog_ns = {"__name__": "__mallm_program__", "__builtins__": builtins}
            try:
                code = _compile(program, "<program>", "exec", dont_inherit=True)
            except _BaseException as e:
                line = (
                    e.lineno
                    if _type(e) is SyntaxError or _issubclass(_type(e), SyntaxError)
                    else None
                )
                where = _int_repr(line) if _type(line) is _int else "null"
                send(
                    "load",
                    '{"ok":false,"parsed":false,"exc":' + exc_info(e) + ',"line":' + where + "}",
                )
                return
            try:
                _exec(code, prog_ns)
            except _BaseException as e:
                send("load", '{"ok":false,"parsed":true,"exc":' + exc_info(e) + "}")
                return
            max_bytes = limits["max_value_bytes"]
            for key, value in _list(_dict_items(prog_ns)):
                if (
                    _type(key) is _str
                    and not key.startswith("__")
                    and key not in test_ns
                    and _callable(value)
                ):
                    test_ns[key] = make_wrapper(value, max_bytes)
            entry = job["entry"]
            if entry is not None:
                fn = _dict_get(prog_ns, entry)
                if fn is None or not _callable(fn):
                    send("load", '{"ok":false,"parsed":true,"missing":' + _enc_str(entry) + "}")
                    return
                candidate = make_wrapper(fn, max_bytes)
                test_ns[entry] = candidate
            what = tampered(snap)
            if what is not None:
                send("load", '{"ok":false,"parsed":true,"tampered":' + _enc_str(what) + "}")
                return
        send("load", '{"ok":true}')
        gens = [fn(candidate) for fn in part_fns]
        unit = 0
        for gen, count in _zip(gens, compiled.part_units):
            for _ in _range(count):
                live = unit >= start
                if live and unit == start and start > 0:
                    send("replayed", "null")
                state.dry = not live
                state.failed = False
                state.reports = []
                state.exc = None
                state.unit_bytes = 0
                began = _clock()
                try:
                    _next(gen)
                except _StopIteration:
                    if live:
                        state.exc = '{"t":"TestCodeEnded","a":null,"m":false}'
                except _BaseException as e:
                    if live:
                        state.exc = exc_info(e)
                if live:
                    what = tampered(snap)  # after every test: a later hang cannot hide it
                    if what is not None:
                        send("done", '{"tampered":' + _enc_str(what) + "}")
                        return
                    took = _float_repr(_clock() - began)
                    reports = _join(state.reports)
                    send(
                        "unit",
                        f'{{"u":{_int_repr(unit)},"r":[{reports}],"x":{state.exc or "null"},"d":{took}}}',
                    )
                unit += 1
        for stream in (_stdout, _stderr):
            try:  # noqa: SIM105 - the harness avoids contextlib: a program could patch it
                stream.flush()
            except _BaseException:
                pass
        what = tampered(snap)
        send("done", "null" if what is None else '{"tampered":' + _enc_str(what) + "}")

    return Harness(run=run, encode=encode, plain=plain, not_plain=NotPlain)


class Harness:
    """The run's entry point plus its value codec (the codec is exposed for tests)."""

    __slots__ = ("encode", "not_plain", "plain", "run")

    def __init__(self, run, encode, plain, not_plain) -> None:
        self.run = run
        self.encode = encode
        self.plain = plain
        self.not_plain = not_plain


# --- monkeypatch detection ----------------------------------------------------------------------


def _dict_version_reader():
    """A function giving a ctypes view of a dict's PEP 509 version tag, or None if unusable.

    CPython bumps ``ma_version_tag`` on every change of a dict. Reading it touches no object in
    the dict (no refcount writes), so checking a module costs a run no copy-on-write page
    faults. The layout is verified here; if it does not behave, the caller falls back.
    """
    try:
        import ctypes

        if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
            return None
        offset = 24  # PyObject_HEAD (16) + ma_used (8)

        def view(d):
            return ctypes.c_uint64.from_address(id(d) + offset)

        read = ctypes._SimpleCData.__dict__["value"].__get__
        probe = {"a": 1}
        tag = view(probe)
        before = read(tag)
        probe["a"] = 2
        changed = read(tag) != before
        mid = read(tag)
        _ = probe["a"]
        unchanged = read(tag) == mid
        if changed and unchanged and len(probe) == 1:
            return view
    except Exception:
        pass
    return None


class _IdentityTag:
    """Fallback watcher: identity of every value in a dict (costs page faults in a run)."""

    def __init__(self, d) -> None:
        self.d = d
        self.keys = tuple(d)

    @staticmethod
    def read(tag) -> tuple:
        return tuple(map(id, map(tag.d.get, tag.keys)))


def _simple_value_getter():
    """ctypes' C getter of ``.value`` (the Python-level class attribute could be patched)."""
    try:
        import ctypes

        return ctypes._SimpleCData.__dict__["value"].__get__
    except Exception:  # pragma: no cover - no ctypes: the identity fallback is used
        return None


_SIMPLE_VALUE = _simple_value_getter()


def take_snapshot(module_names, view):
    """What a run checks at the end: builtins, the tests' modules and their classes."""
    names = []
    tags = []
    for name in ["builtins", *module_names]:
        mod = sys.modules.get(name)
        if mod is None:
            continue
        names.append((name, mod))
        watched = [(name, mod.__dict__)]
        if name != "builtins":
            for key, v in list(mod.__dict__.items()):
                if (
                    type(v) is type
                    and getattr(v, "__module__", None) == name
                    and not (v.__flags__ & (1 << 8))  # Py_TPFLAGS_IMMUTABLETYPE
                ):
                    inner = gc.get_referents(v.__dict__)
                    if len(inner) == 1 and type(inner[0]) is dict:
                        watched.append((f"{name}.{key}", inner[0]))
        for label, d in watched:
            if view is not None:
                tag, read = view(d), _SIMPLE_VALUE
            else:
                tag, read = _IdentityTag(d), _IdentityTag.read
            tags.append((label, d, read, tag, read(tag)))
    return names, tags


# --- Landlock: the file-system, TCP and signal rules of runs where namespaces are missing -------

LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446  # every arch
LANDLOCK_RULE_PATH_BENEATH = 1
LL_EXECUTE = 1 << 0
LL_WRITE_FILE = 1 << 1
LL_READ_FILE = 1 << 2
LL_READ_DIR = 1 << 3
LL_TRUNCATE = 1 << 14  # ABI 3
LL_IOCTL_DEV = 1 << 15  # ABI 5
LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV
LL_READ_TREE = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR
LL_DEVICE = LL_READ_FILE | LL_WRITE_FILE | LL_TRUNCATE | LL_IOCTL_DEV
LL_TCP = 0b11  # bind and connect (ABI 4)
LL_SCOPES = 0b11  # abstract unix sockets and signals outside the domain (ABI 6)
LANDLOCK_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: no Landlock, or not enabled)."""
    if LIBC is None:
        return 0
    import ctypes

    version = LIBC.syscall(ctypes.c_long(LANDLOCK_CREATE_RULESET), None, 0, 1)
    return max(0, int(version))


def landlock_fs_rights(abi: int) -> int:
    """Every file-system access right the kernel's ABI knows (all are then denied by default)."""
    rights = (1 << 13) - 1  # ABI 1: execute ... make_sym
    for version, bit in ((2, 13), (3, 14), (5, 15)):  # refer, truncate, ioctl_dev
        if abi >= version:
            rights |= 1 << bit
    return rights


def landlock_read_paths(view: list) -> list[str]:
    """The real paths a run may read: the view's binds without what its masks hide.

    Landlock only allows (there is no "deny below"), so a bind that holds a masked folder
    (``/usr`` holding ``/usr/lib/python3/dist-packages``) is replaced by its entries, down to
    the masked folder's siblings.
    """
    masks = [os.path.realpath(op[1]) for op in view if op[0] == "mask"]
    out: list[str] = []

    def add(path: str, depth: int = 0) -> None:
        real = os.path.realpath(path)
        if not os.path.exists(real) or any(real == m or real.startswith(m + "/") for m in masks):
            return
        if depth < 32 and os.path.isdir(real) and any(m.startswith(real + "/") for m in masks):
            try:
                names = sorted(os.listdir(real))
            except OSError:  # unreadable to the worker: a run could not list it either
                return
            for name in names:
                add(os.path.join(real, name), depth + 1)
            return
        if real not in out:
            out.append(real)

    for op in view:
        if op[0] == "bind":
            add(op[1])
    return out


def landlock_ruleset(
    abi: int, reads: list[str], writable: list[str], fs: bool, tcp: bool, scopes: bool
) -> int:
    """A Landlock ruleset fd: `reads` readable, `writable` folders fully usable, devices."""
    import ctypes

    class RulesetAttr(ctypes.Structure):
        _fields_ = (
            ("handled_access_fs", ctypes.c_uint64),
            ("handled_access_net", ctypes.c_uint64),
            ("scoped", ctypes.c_uint64),
        )

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))

    handled = landlock_fs_rights(abi) if fs else 0
    attr = RulesetAttr(handled, LL_TCP if tcp else 0, LL_SCOPES if scopes else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = LIBC.syscall(ctypes.c_long(LANDLOCK_CREATE_RULESET), ctypes.byref(attr), size, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    if not fs:
        return fd
    try:
        rules = [(p, LL_READ_TREE) for p in reads]
        rules += [(p, handled) for p in writable]
        rules += [(p, LL_DEVICE) for p in LANDLOCK_DEVICES if os.path.exists(p)]
        for path, rights in rules:
            try:
                parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:  # gone, or closed to the worker: then closed to runs as well
                continue
            try:
                if not os.path.isdir(path):
                    rights &= LL_FILE_RIGHTS
                rule = PathBeneath(rights & handled, parent)
                if (
                    LIBC.syscall(
                        ctypes.c_long(LANDLOCK_ADD_RULE),
                        fd,
                        LANDLOCK_RULE_PATH_BENEATH,
                        ctypes.byref(rule),
                        0,
                    )
                    != 0
                ):
                    err = ctypes.get_errno()
                    raise OSError(err, f"landlock_add_rule {path}: {os.strerror(err)}")
            finally:
                os.close(parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def landlock_restrict(fd: int) -> None:
    """Enter the ruleset's domain (this process and everything it starts, for good)."""
    import ctypes

    if LIBC.syscall(ctypes.c_long(LANDLOCK_RESTRICT_SELF), fd, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")


# --- seccomp: no sockets and no SysV IPC where the namespaces are missing -----------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
X32_SYSCALL_BIT = 0x40000000
SECCOMP_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_*
SYSCALL_NUMBERS = {
    "x86_64": {
        "socket": 41,
        "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67,
        "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220,
        "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
    },
    "aarch64": {
        "socket": 198,
        "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197,
        "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193,
        "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189,
    },
}  # fmt: skip
SYSV_IPC = ("shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
            "msgget", "msgsnd", "msgrcv", "msgctl")  # fmt: skip


def install_syscall_filter(names: list[str]) -> None:
    """Refuse the named syscalls with EACCES in this process and all it starts (seccomp).

    Without a network namespace Landlock stops TCP only: UDP, raw and unix sockets by path
    (a local server's, even the Docker daemon's) stay open, so ``socket()`` is refused
    (``socketpair()``, for asyncio's self-pipe and multiprocessing pipes, is not). Without
    an IPC namespace a run could reach its uid's SysV shared memory, semaphores and message
    queues (another program's). Graded code needs neither.
    """
    import ctypes

    machine = os.uname().machine
    if machine not in SECCOMP_ARCH:
        raise OSError(errno.ENOSYS, f"no seccomp syscall table for {machine}")
    numbers = [SYSCALL_NUMBERS[machine][name] for name in names]
    if machine == "x86_64":
        numbers += [X32_SYSCALL_BIT | nr for nr in numbers]

    class Instr(ctypes.Structure):
        _fields_ = (
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        )

    class Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Instr)))

    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K
    # [0] load arch; [1] our ABI? on to [2], else to the deny at [4+n] (a foreign ABI, e.g.
    # i386's socketcall on x86_64, is refused every syscall: runs never use one); [2] load
    # the syscall number; [3, 3+n) a refused one? to the deny; [3+n] allow; [4+n] deny.
    # Jump offsets count from the next instruction.
    n = len(numbers)
    code = [
        (ld_w_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq_k, 0, n + 2, SECCOMP_ARCH[machine]),
        (ld_w_abs, 0, 0, 0),  # seccomp_data.nr
        *((jeq_k, n - i, 0, nr) for i, nr in enumerate(numbers)),
        (ret_k, 0, 0, SECCOMP_RET_ALLOW),
        (ret_k, 0, 0, SECCOMP_RET_ERRNO | errno.EACCES),
    ]
    instrs = (Instr * len(code))(*code)
    prog = Program(len(code), instrs)
    _call("prctl", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)


# --- the server ---------------------------------------------------------------------------------

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
    __slots__ = ("modules", "part_names", "part_units", "parts", "prelude", "snapshot")


class Server:
    def __init__(self, cfg: dict, req_fd: int, resp_fd: int, layers: list, notes: list) -> None:
        self.cfg = cfg
        self.req_fd = req_fd
        self.resp_fd = resp_fd
        self.layers = layers
        self.notes = notes
        self.pidns = "pidns" in layers
        self.uid = cfg.get("uid")
        self.gid = cfg.get("gid")
        self.userns = "userns" in layers
        self.scratch_root = cfg.get("scratch_root")
        self.wipe_scratch_root = bool(cfg.get("scratch_private"))
        self.cache: dict[str, Compiled] = {}
        self.snapshots: dict[tuple, tuple] = {}
        self.dict_view = _dict_version_reader()
        self.devnull = os.open("/dev/null", os.O_RDWR)
        self.pristine_builtins = dict(builtins.__dict__)
        self.harness = None
        self.landlock_fd: int | None = None
        self.landlock_files = False  # runs can write in their scratch folder only
        self.path_aliases: dict[str, str] = {}  # sys.path folder -> /proc/self/fd/N
        self.run_path: list[str] | None = None  # the runs' sys.path, when it differs
        self.scratch_cap: int | None = None  # set once the scratch folder's place is known
        self.rlimit_cache: dict[tuple, list] = {}
        self.view_holders = {  # mount points of the view directly in /tmp (see view.py)
            op[1]
            for op in cfg.get("view", [])
            if op[0] in ("bind", "mask") and os.path.dirname(op[1]) == "/tmp"
        }

    # -- set-up --------------------------------------------------------------------------------

    def setup_filesystem(self) -> None:
        if "mountns" in self.layers and self.cfg.get("minimal_root", True):
            try:
                self._minimal_root()
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

    def _minimal_root(self) -> None:
        """pivot_root into a tmpfs holding the read-only view the judge computed (view.py)."""
        _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        view = [op for op in self.cfg.get("view", []) if op[0] != "bind" or os.path.lexists(op[1])]
        needed = [os.path.realpath(op[1]) for op in view if op[0] == "bind"]
        base = next(
            b
            for b in ("/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/opt", "/run")
            if os.path.isdir(b) and not any(n == b or n.startswith(b + "/") for n in needed)
        )
        _mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
        try:
            self._populate_root(base, view)
        except OSError:
            with contextlib.suppress(OSError):  # uncover the host folder for the fallback
                _call("umount2", base.encode(), MNT_DETACH)
            raise

    def _populate_root(self, base: str, view: list) -> None:
        os.makedirs(base + "/tmp", exist_ok=True)  # first: the view may show paths below it
        size = int(self.cfg.get("scratch_mb", 64))
        _mount("tmpfs", base + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0755,size={size}m")
        masks = []
        for op in view:
            kind, path = op[0], op[1]
            target = base + path
            if kind == "link":
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if not os.path.lexists(target):
                    os.symlink(op[2], target)
            elif kind == "mask":  # an empty file system: hides a folder, or holds view parts
                os.makedirs(target, exist_ok=True)
                _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
                masks.append(target)
            elif kind == "bind":
                if os.path.isdir(path):
                    os.makedirs(target, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "w"):
                        pass
                _mount(path, target, None, MS_BIND, None)
                flags = MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags(path)
                _mount(None, target, None, flags, None)
        for target in masks:  # read-only once whatever lies inside them is in place
            _mount(None, target, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        os.makedirs(base + "/dev", exist_ok=True)
        _mount("tmpfs", base + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
        for dev in ("null", "zero", "full", "random", "urandom"):
            with open(f"{base}/dev/{dev}", "w"):
                pass
            _mount(f"/dev/{dev}", f"{base}/dev/{dev}", None, MS_BIND, None)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
            os.symlink(target, f"{base}/dev/{name}")
        os.symlink("/proc/self/fd/1", f"{base}/dev/stdout")
        os.symlink("/proc/self/fd/2", f"{base}/dev/stderr")
        os.makedirs(base + "/proc", exist_ok=True)
        if self.pidns:
            _mount("proc", base + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        os.makedirs(base + "/.old", exist_ok=True)
        os.chdir(base)
        _syscall("pivot_root", b".", b".old")
        os.chdir("/")
        _call("umount2", b"/.old", MNT_DETACH)
        os.rmdir("/.old")
        _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)

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
                    job, write, "0" * 16, self.pristine_builtins, compiled, compiled.snapshot
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
            write_frame(self.resp_fd, resp)

    def compiled(self, key: str, suite: dict | None) -> Compiled | None:
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

    def snapshot_of(self, modules: tuple) -> tuple:
        found = self.snapshots.get(modules)
        if found is None:
            found = self.snapshots[modules] = take_snapshot(modules, self.dict_view)
        return found

    def handle(self, req: dict) -> dict:
        compiled = self.compiled(req["key"], req.get("suite"))
        if compiled is None:  # the judge sends each suite once; ask again if it was evicted
            return {"id": req["id"], "need_suite": req["key"]}
        limits = req["limits"]
        n = sum(compiled.part_units)
        units: list = [None] * n
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
            os.chown(path, self.uid, self.gid)
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

    def run_once(self, req, compiled, start, limits, total_deadline, out) -> Run:
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
        reader = Records(nonce, limits["max_record_bytes"])
        phase = "load"
        expect_unit = start
        timeout = limits["timeout_s"]
        tick = min(0.1, max(0.005, timeout / 10))
        exited = False
        out_open = True
        killed_by_us = None
        status = None
        pidfd = None
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
            pidfd = _pidfd_open(pid)
            poller.register(pidfd, select.POLLIN)
        except (AttributeError, OSError):
            pass
        started = time.monotonic()  # when the current phase/unit was first seen running
        write_ends = (chan_w, out_w)
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
            for fd in (chan_r, out_r, pidfd, *write_ends):
                if fd is not None:
                    os.close(fd)
            self.wipe_scratch(scratch)
        result.phase = phase
        if phase == "done" or (result.load is not None and not result.load.get("ok")):
            result.end = "done"
        elif killed_by_us is not None:
            result.end = killed_by_us
        else:
            result.end, result.info = _classify_exit(status)
        return result

    def enter_run(self, scratch, rlimits, chan_r, chan_w, out_r, out_w) -> int:
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
            os.setresgid(self.gid, self.gid, self.gid)
            os.setresuid(self.uid, self.uid, self.uid)
        if self.run_path is not None:
            sys.path[:] = self.run_path
        return chan

    def rlimits(self, limits: dict) -> list:
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
        self.load = None
        self.units: list = []
        self.end = "done"
        self.info = None
        self.phase = "load"
        self.tampered = None
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
        self.ready: list = []
        self.error = None

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

    def take(self) -> list:
        out, self.ready = self.ready, []
        return out


def _read_some(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return b""
    except OSError:
        return b""


def _classify_exit(status) -> tuple[str, object]:
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
    kids = []
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


def _locked_flags(path: str) -> int:
    """Mount flags a read-only remount of a bind must keep (required inside a user namespace)."""
    flags = 0
    try:
        f = os.statvfs(path).f_flag
    except OSError:
        return flags
    for st, ms in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if f & st:
            flags |= ms
    return flags


# --- start-up -----------------------------------------------------------------------------------


def _write_id_maps(uid: int, gid: int) -> None:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def unshare_namespaces(layers: list, notes: list) -> None:
    """Enter new namespaces where the kernel lets us (root, or an unprivileged user namespace)."""
    if LIBC is None:
        notes.append("ctypes unavailable: no namespaces")
        return
    if os.geteuid() != 0:
        uid, gid = os.getuid(), os.getgid()
        try:
            _call("unshare", CLONE_NEWUSER)
            _write_id_maps(uid, gid)
            layers.append("userns")
        except OSError as e:
            notes.append(f"no user namespace: {e}")
            return
    for flag, name in (
        (CLONE_NEWNS, "mountns"),
        (CLONE_NEWNET, "netns"),
        (CLONE_NEWIPC, "ipcns"),
        (CLONE_NEWUTS, "utsns"),
        (CLONE_NEWPID, "pidns"),
    ):
        try:
            _call("unshare", flag)
            layers.append(name)
        except OSError as e:
            notes.append(f"no {name}: {e}")
    if "utsns" in layers:
        with contextlib.suppress(OSError):
            _call("sethostname", b"sandbox", 7)


def main() -> None:
    if resource is None:  # pragma: no cover - not Linux
        raise SystemExit("the sandbox needs Linux")
    cfg = json.loads(sys.argv[1])
    global _RESP_FD
    req_fd = os.dup(0)
    resp_fd = _RESP_FD = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    layers: list[str] = ["process-group", "rlimits"]
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # runs inherit it: an over-long write fails
    notes: list[str] = []
    if cfg.get("outer"):
        layers.append(cfg["outer"])
    if cfg.get("namespaces", True):
        unshare_namespaces(layers, notes)
    if "pidns" in layers:
        parent = os.getpid()
        pid = os.fork()
        if pid:  # the launcher waits for the namespace's init and exits with it
            os.close(req_fd)
            os.close(resp_fd)
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except ChildProcessError:  # pragma: no cover
                    status = 0
                    break
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent and os.getppid() != 0:  # pragma: no cover - launcher died
            os._exit(1)
    else:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        layers.append("pdeathsig")
    if _prctl(PR_SET_NO_NEW_PRIVS, 1):
        layers.append("no-new-privs")
    _prctl(PR_SET_DUMPABLE, 0)
    if os.geteuid() == 0 and cfg.get("uid") is None and "userns" not in layers:
        notes.append("running as root without a sandbox uid")
    if cfg.get("uid") is not None:
        if os.geteuid() == 0 and "userns" not in layers:
            layers.append(f"uid:{cfg['uid']}")
        else:
            cfg["uid"] = cfg["gid"] = None
    server = Server(cfg, req_fd, resp_fd, layers, notes)
    server.setup_filesystem()
    server.setup_landlock()
    server.reach_standard_library()
    refused = {
        "seccomp-sockets": ["socket"] if "netns" not in layers else [],
        "seccomp-sysv-ipc": list(SYSV_IPC) if "ipcns" not in layers else [],
    }
    if any(refused.values()) and not cfg.get("outer") and "no-new-privs" in layers:
        try:  # the server itself uses neither
            install_syscall_filter([name for names in refused.values() for name in names])
            layers.extend(layer for layer, names in refused.items() if names)
        except (OSError, AttributeError) as e:
            notes.append(f"no seccomp filter: {e}")
    if "userns" in layers or os.geteuid() == 0:
        for cap in range(64):  # nothing a run executes may gain capabilities
            if not _prctl(PR_CAPBSET_DROP, cap) and cap > 40:
                break
        LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    server.preload()
    if "userns" in layers:  # uid 0 of our user namespace: keep no capability at all, so that
        _drop_capabilities()  # runs (which inherit it) cannot remount, and we pay it once
        layers.append("no-capabilities")
    server.serve()


def _main_reporting_errors() -> None:
    try:
        main()
    except BaseException as e:  # tell the judge why the worker could not start
        import traceback

        with contextlib.suppress(Exception):
            write_frame(1 if _RESP_FD is None else _RESP_FD, {"fatal": f"{type(e).__name__}: {e}"})
        traceback.print_exc()
        os._exit(1)


_RESP_FD = None

if __name__ == "__main__":
    _main_reporting_errors()
