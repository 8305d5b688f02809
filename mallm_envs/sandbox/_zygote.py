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


# --- seccomp: one allow-list of syscalls for every run, in every mode ---------------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}  # AUDIT_ARCH_*
CLONE_NAMESPACES = (
    0x7E020000  # CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
)
SOCKET_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (inside a netns only)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SYSCALLS_ALLOWED = _words(
    """
    read write close futex mmap munmap mprotect madvise mremap brk rt_sigaction rt_sigprocmask
    rt_sigreturn newfstatat fstat stat lstat statx openat open lseek pread64 pwrite64 readv writev
    getdents64 getrandom clock_gettime clock_nanosleep nanosleep gettimeofday poll ppoll select
    pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait epoll_pwait2 wait4 waitid
    clone fork vfork execve execveat exit exit_group kill tgkill tkill getpid getppid gettid
    getuid geteuid getgid getegid getresuid getresgid getgroups getpgid getpgrp getsid setsid
    setpgid dup dup2 dup3 pipe pipe2 fcntl ioctl access faccessat faccessat2 readlink readlinkat
    getcwd chdir fchdir mkdir mkdirat rmdir unlink unlinkat rename renameat renameat2 link linkat
    symlink symlinkat chmod fchmod fchmodat fchmodat2 chown fchown lchown fchownat umask
    truncate ftruncate fsync fdatasync sync syncfs sync_file_range fallocate fadvise64 flock
    utime utimes utimensat futimesat creat mknod mknodat statfs fstatfs sendfile copy_file_range
    splice tee vmsplice readahead preadv pwritev preadv2 pwritev2 close_range
    getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr setxattr lsetxattr fsetxattr
    removexattr lremovexattr fremovexattr
    uname sysinfo times getrusage getrlimit setrlimit prlimit64 getpriority setpriority
    getitimer setitimer alarm pause timer_create timer_settime timer_gettime timer_getoverrun
    timer_delete timerfd_create timerfd_settime timerfd_gettime clock_getres time
    rt_sigpending rt_sigtimedwait rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend sigaltstack
    restart_syscall signalfd signalfd4 eventfd eventfd2 inotify_init inotify_init1
    inotify_add_watch inotify_rm_watch memfd_create msync mincore mlock mlock2 munlock mlockall
    munlockall membarrier remap_file_pages pkey_alloc pkey_free pkey_mprotect
    sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam
    sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
    sched_rr_get_interval sched_getattr sched_setattr getcpu ioprio_get ioprio_set
    arch_prctl set_tid_address set_robust_list get_robust_list rseq prctl capget capset
    setuid setgid setreuid setregid setresuid setresgid setgroups setfsuid setfsgid
    seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
    pidfd_open pidfd_send_signal futex_waitv getdents openat2
    socketpair bind listen accept accept4 connect getsockname getpeername getsockopt
    setsockopt sendto recvfrom sendmsg recvmsg sendmmsg recvmmsg shutdown
"""
)
"""What runs (and the server) may call: Docker's default allow-list, less what graded code
never needs (``socket`` is checked on its own, ``clone`` by its flags). Any other syscall fails
with ENOSYS, as on a kernel that lacks it, so libraries take their fallbacks."""

SYSCALLS_REFUSED = {  # group: (errno, names); a run gets this errno, never the syscall
    "namespaces": (errno.EPERM, ("unshare", "setns")),
    "clone3": (errno.ENOSYS, ("clone3",)),  # its flags are out of a filter's reach: glibc
    # then falls back to clone(), whose flags the filter checks
    "keyrings": (errno.EPERM, ("add_key", "keyctl", "request_key")),
    "sysv-ipc": (errno.EPERM, ("shmget", "shmat", "shmctl", "shmdt", "semget", "semop",
                               "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl")),
    "posix-mqueue": (errno.EPERM, ("mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
                                   "mq_notify", "mq_getsetattr")),
    "kernel": (errno.EPERM, ("bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
                             "io_uring_enter", "io_uring_register", "ptrace", "process_vm_readv",
                             "process_vm_writev", "kcmp")),
}  # fmt: skip
"""Named refusals (the allow-list refuses them anyway): a clearer errno, and the list the
docs and tests point to."""

SYSCALL_TABLES = {  # name and number of each syscall named above, per machine (from the kernel's
    # uapi headers: asm/unistd_64.h for x86_64, asm-generic/unistd.h for aarch64)
    "x86_64": """
        read 0 write 1 close 3 futex 202 mmap 9 munmap 11 mprotect 10 madvise 28 mremap 25 brk 12
        rt_sigaction 13 rt_sigprocmask 14 rt_sigreturn 15 newfstatat 262 fstat 5 stat 4 lstat 6
        statx 332 openat 257 open 2 lseek 8 pread64 17 pwrite64 18 readv 19 writev 20
        getdents64 217 getrandom 318 clock_gettime 228 clock_nanosleep 230 nanosleep 35
        gettimeofday 96 poll 7 ppoll 271 select 23 pselect6 270 epoll_create 213 epoll_create1 291
        epoll_ctl 233 epoll_wait 232 epoll_pwait 281 epoll_pwait2 441 wait4 61 waitid 247 clone 56
        fork 57 vfork 58 execve 59 execveat 322 exit 60 exit_group 231 kill 62 tgkill 234
        tkill 200 getpid 39 getppid 110 gettid 186 getuid 102 geteuid 107 getgid 104 getegid 108
        getresuid 118 getresgid 120 getgroups 115 getpgid 121 getpgrp 111 getsid 124 setsid 112
        setpgid 109 dup 32 dup2 33 dup3 292 pipe 22 pipe2 293 fcntl 72 ioctl 16 access 21
        faccessat 269 faccessat2 439 readlink 89 readlinkat 267 getcwd 79 chdir 80 fchdir 81
        mkdir 83 mkdirat 258 rmdir 84 unlink 87 unlinkat 263 rename 82 renameat 264 renameat2 316
        link 86 linkat 265 symlink 88 symlinkat 266 chmod 90 fchmod 91 fchmodat 268 fchmodat2 452
        chown 92 fchown 93 lchown 94 fchownat 260 umask 95 truncate 76 ftruncate 77 fsync 74
        fdatasync 75 sync 162 syncfs 306 sync_file_range 277 fallocate 285 fadvise64 221 flock 73
        utime 132 utimes 235 utimensat 280 futimesat 261 creat 85 mknod 133 mknodat 259 statfs 137
        fstatfs 138 sendfile 40 copy_file_range 326 splice 275 tee 276 vmsplice 278 readahead 187
        preadv 295 pwritev 296 preadv2 327 pwritev2 328 close_range 436 getxattr 191 lgetxattr 192
        fgetxattr 193 listxattr 194 llistxattr 195 flistxattr 196 setxattr 188 lsetxattr 189
        fsetxattr 190 removexattr 197 lremovexattr 198 fremovexattr 199 uname 63 sysinfo 99
        times 100 getrusage 98 getrlimit 97 setrlimit 160 prlimit64 302 getpriority 140
        setpriority 141 getitimer 36 setitimer 38 alarm 37 pause 34 timer_create 222
        timer_settime 223 timer_gettime 224 timer_getoverrun 225 timer_delete 226
        timerfd_create 283 timerfd_settime 286 timerfd_gettime 287 clock_getres 229 time 201
        rt_sigpending 127 rt_sigtimedwait 128 rt_sigqueueinfo 129 rt_tgsigqueueinfo 297
        rt_sigsuspend 130 sigaltstack 131 restart_syscall 219 signalfd 282 signalfd4 289
        eventfd 284 eventfd2 290 inotify_init 253 inotify_init1 294 inotify_add_watch 254
        inotify_rm_watch 255 memfd_create 319 msync 26 mincore 27 mlock 149 mlock2 325 munlock 150
        mlockall 151 munlockall 152 membarrier 324 remap_file_pages 216 pkey_alloc 330
        pkey_free 331 pkey_mprotect 329 sched_yield 24 sched_getaffinity 204 sched_setaffinity 203
        sched_getparam 143 sched_setparam 142 sched_getscheduler 145 sched_setscheduler 144
        sched_get_priority_max 146 sched_get_priority_min 147 sched_rr_get_interval 148
        sched_getattr 315 sched_setattr 314 getcpu 309 ioprio_get 252 ioprio_set 251
        arch_prctl 158 set_tid_address 218 set_robust_list 273 get_robust_list 274 rseq 334
        prctl 157 capget 125 capset 126 setuid 105 setgid 106 setreuid 113 setregid 114
        setresuid 117 setresgid 119 setgroups 116 setfsuid 122 setfsgid 123 seccomp 317
        landlock_create_ruleset 444 landlock_add_rule 445 landlock_restrict_self 446
        pidfd_open 434 pidfd_send_signal 424 futex_waitv 449 socket 41 socketpair 53 bind 49
        listen 50 accept 43 accept4 288 connect 42 getsockname 51 getpeername 52 getsockopt 55
        setsockopt 54 sendto 44 recvfrom 45 sendmsg 46 recvmsg 47 sendmmsg 307 recvmmsg 299
        shutdown 48 getdents 78 openat2 437 unshare 272 setns 308 clone3 435 add_key 248
        keyctl 250 request_key 249 shmget 29 shmat 30 shmctl 31 shmdt 67 semget 64 semop 65
        semctl 66 semtimedop 220 msgget 68 msgsnd 69 msgrcv 70 msgctl 71 mq_open 240 mq_unlink 241
        mq_timedsend 242 mq_timedreceive 243 mq_notify 244 mq_getsetattr 245 bpf 321
        perf_event_open 298 userfaultfd 323 io_uring_setup 425 io_uring_enter 426
        io_uring_register 427 ptrace 101 process_vm_readv 310 process_vm_writev 311 kcmp 312
    """,
    "aarch64": """
        read 63 write 64 close 57 futex 98 mmap 222 munmap 215 mprotect 226 madvise 233 mremap 216
        brk 214 rt_sigaction 134 rt_sigprocmask 135 rt_sigreturn 139 newfstatat 79 fstat 80
        statx 291 openat 56 lseek 62 pread64 67 pwrite64 68 readv 65 writev 66 getdents64 61
        getrandom 278 clock_gettime 113 clock_nanosleep 115 nanosleep 101 gettimeofday 169
        ppoll 73 pselect6 72 epoll_create1 20 epoll_ctl 21 epoll_pwait 22 epoll_pwait2 441
        wait4 260 waitid 95 clone 220 execve 221 execveat 281 exit 93 exit_group 94 kill 129
        tgkill 131 tkill 130 getpid 172 getppid 173 gettid 178 getuid 174 geteuid 175 getgid 176
        getegid 177 getresuid 148 getresgid 150 getgroups 158 getpgid 155 getsid 156 setsid 157
        setpgid 154 dup 23 dup3 24 pipe2 59 fcntl 25 ioctl 29 faccessat 48 faccessat2 439
        readlinkat 78 getcwd 17 chdir 49 fchdir 50 mkdirat 34 unlinkat 35 renameat 38
        renameat2 276 linkat 37 symlinkat 36 fchmod 52 fchmodat 53 fchmodat2 452 fchown 55
        fchownat 54 umask 166 truncate 45 ftruncate 46 fsync 82 fdatasync 83 sync 81 syncfs 267
        sync_file_range 84 fallocate 47 fadvise64 223 flock 32 utimensat 88 mknodat 33 statfs 43
        fstatfs 44 sendfile 71 copy_file_range 285 splice 76 tee 77 vmsplice 75 readahead 213
        preadv 69 pwritev 70 preadv2 286 pwritev2 287 close_range 436 getxattr 8 lgetxattr 9
        fgetxattr 10 listxattr 11 llistxattr 12 flistxattr 13 setxattr 5 lsetxattr 6 fsetxattr 7
        removexattr 14 lremovexattr 15 fremovexattr 16 uname 160 sysinfo 179 times 153
        getrusage 165 getrlimit 163 setrlimit 164 prlimit64 261 getpriority 141 setpriority 140
        getitimer 102 setitimer 103 timer_create 107 timer_settime 110 timer_gettime 108
        timer_getoverrun 109 timer_delete 111 timerfd_create 85 timerfd_settime 86
        timerfd_gettime 87 clock_getres 114 rt_sigpending 136 rt_sigtimedwait 137
        rt_sigqueueinfo 138 rt_tgsigqueueinfo 240 rt_sigsuspend 133 sigaltstack 132
        restart_syscall 128 signalfd4 74 eventfd2 19 inotify_init1 26 inotify_add_watch 27
        inotify_rm_watch 28 memfd_create 279 msync 227 mincore 232 mlock 228 mlock2 284
        munlock 229 mlockall 230 munlockall 231 membarrier 283 remap_file_pages 234 pkey_alloc 289
        pkey_free 290 pkey_mprotect 288 sched_yield 124 sched_getaffinity 123
        sched_setaffinity 122 sched_getparam 121 sched_setparam 118 sched_getscheduler 120
        sched_setscheduler 119 sched_get_priority_max 125 sched_get_priority_min 126
        sched_rr_get_interval 127 sched_getattr 275 sched_setattr 274 getcpu 168 ioprio_get 31
        ioprio_set 30 set_tid_address 96 set_robust_list 99 get_robust_list 100 rseq 293 prctl 167
        capget 90 capset 91 setuid 146 setgid 144 setreuid 145 setregid 143 setresuid 147
        setresgid 149 setgroups 159 setfsuid 151 setfsgid 152 seccomp 277
        landlock_create_ruleset 444 landlock_add_rule 445 landlock_restrict_self 446
        pidfd_open 434 pidfd_send_signal 424 futex_waitv 449 socket 198 socketpair 199 bind 200
        listen 201 accept 202 accept4 242 connect 203 getsockname 204 getpeername 205
        getsockopt 209 setsockopt 208 sendto 206 recvfrom 207 sendmsg 211 recvmsg 212 sendmmsg 269
        recvmmsg 243 shutdown 210 openat2 437 unshare 97 setns 268 clone3 435 add_key 217
        keyctl 219 request_key 218 shmget 194 shmat 196 shmctl 195 shmdt 197 semget 190 semop 193
        semctl 191 semtimedop 192 msgget 186 msgsnd 189 msgrcv 188 msgctl 187 mq_open 180
        mq_unlink 181 mq_timedsend 182 mq_timedreceive 183 mq_notify 184 mq_getsetattr 185 bpf 280
        perf_event_open 241 userfaultfd 282 io_uring_setup 425 io_uring_enter 426
        io_uring_register 427 ptrace 117 process_vm_readv 270 process_vm_writev 271 kcmp 272
    """,
}


def syscall_numbers(machine: str) -> dict[str, int]:
    """The syscall table of `machine` as a dict (empty for a machine we have no table of)."""
    words = SYSCALL_TABLES.get(machine, "").split()
    return {name: int(number) for name, number in zip(words[::2], words[1::2])}


def syscall_filter(machine: str, sockets: bool) -> list[tuple[int, int, int, int]]:
    """The classic-BPF program of the runs' seccomp filter, as (code, jt, jf, k) tuples.

    Layout: a syscall of another ABI (i386's on x86_64, x32's numbers) gets EPERM; ``clone``
    is allowed unless its flags ask for a new namespace; ``socket`` is refused with EACCES
    (``sockets`` False: no network namespace, so no socket at all) or allowed for the
    families in :data:`SOCKET_FAMILIES`; then each allowed syscall is a compare and a
    return-allow, each named refusal a compare and a return of its errno; anything else
    returns ENOSYS. Every jump is short (the kernel's 8-bit offsets), and the kernel caches
    the verdict of every syscall whose verdict does not depend on its arguments (5.11+).
    """
    numbers = syscall_numbers(machine)
    ld_w_abs, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JMP|JSET|K, RET|K
    allow = (ret, 0, 0, SECCOMP_RET_ALLOW)

    def deny(err: int) -> tuple[int, int, int, int]:
        return (ret, 0, 0, SECCOMP_RET_ERRNO | err)

    arg0 = 16  # seccomp_data.args[0], low 32 bits (little-endian machines only)
    code = [
        (ld_w_abs, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, SECCOMP_ARCH[machine]),
        deny(errno.EPERM),
        (ld_w_abs, 0, 0, 0),  # seccomp_data.nr
        (jeq, 0, 4, numbers["clone"]),
        (ld_w_abs, 0, 0, arg0),
        (jset, 0, 1, CLONE_NAMESPACES),
        deny(errno.EPERM),
        allow,
    ]
    if sockets:
        n = len(SOCKET_FAMILIES)
        code += [(jeq, 0, n + 3, numbers["socket"]), (ld_w_abs, 0, 0, arg0)]
        code += [(jeq, n - i, 0, family) for i, family in enumerate(SOCKET_FAMILIES)]
        code += [deny(errno.EAFNOSUPPORT), allow]
    else:
        code += [(jeq, 0, 1, numbers["socket"]), deny(errno.EACCES)]
    for name in SYSCALLS_ALLOWED:
        if name in numbers and name != "clone":
            code += [(jeq, 0, 1, numbers[name]), allow]
    for err, names in SYSCALLS_REFUSED.values():
        for name in names:
            if name in numbers:
                code += [(jeq, 0, 1, numbers[name]), deny(err)]
    code.append(deny(errno.ENOSYS))
    return code


def install_syscall_filter(sockets: bool) -> None:
    """Enter the runs' seccomp filter (:func:`syscall_filter`): this process and all it starts.

    Installed once in the server, before the first fork, so every run inherits it at no cost
    per run. Graded code needs none of what it refuses: new namespaces (the start of many
    privilege escalations), io_uring, bpf, userfaultfd, perf events, ptrace, kernel keyrings
    (shared by every process of a uid, so by later runs and later judges), SysV IPC and POSIX
    message queues (they outlive a run), and, without a network namespace, sockets (UDP, raw,
    unix sockets by path; ``socketpair()`` still works for asyncio and multiprocessing).
    """
    import ctypes

    machine = os.uname().machine
    if machine not in SECCOMP_ARCH or sys.byteorder != "little":
        raise OSError(errno.ENOSYS, f"no seccomp syscall table for {machine}")
    code = syscall_filter(machine, sockets)

    class Instr(ctypes.Structure):
        _fields_ = (
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        )

    class Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(Instr)))

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
        self.owner_gone = False  # the judge's end of the request pipe closed: stop at once
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
            if self.owner_gone:  # nobody to answer: the run is killed and swept; exit
                return
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
    if "no-new-privs" in layers or os.geteuid() == 0:
        sockets = "netns" in layers or "bwrap" in layers  # bwrap gives runs a network namespace
        try:  # the server itself needs nothing the filter refuses
            install_syscall_filter(sockets)
            layers.extend(["seccomp", "seccomp-sysv-ipc"])
            if not sockets:
                layers.append("seccomp-sockets")
        except (OSError, AttributeError) as e:
            notes.append(f"no seccomp filter: {e}")
    else:
        notes.append("no seccomp filter: no_new_privs could not be set")
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
