"""The run's harness: the code a forked run executes, and the snapshot that catches tampering.

Untrusted from the moment the candidate's program starts: everything the harness needs is
captured in closures before that, and it ships plain *values* on a private pipe, never a
verdict (the judge decides; see ``mallm_envs/sandbox/verdicts.py``). The snapshot is what a
run checks after each test: the identity of ``builtins`` and of every module (and its classes)
the tests import. Part of the worker program (see :mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import builtins
import gc
import json
import json.encoder
import os
import sys
import time

from mallm_envs.sandbox.zygote.framing import EXIT_CHANNEL_LOST
from mallm_envs.sandbox.zygote.linux import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# --- the run's harness ------------------------------------------------------------------------


def make_harness() -> Harness:
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
    _bytes_copy = bytes.__bytes__ if hasattr(bytes, "__bytes__") else bytes  # type: ignore[attr-defined]
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
        budget: int
        dry: bool
        exc: str | None
        failed: bool
        max_checks: int
        max_unit_bytes: int
        max_value_bytes: int
        nodes: int
        reports: list[str]
        unit_bytes: int
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

    def type_name(obj: object) -> str:
        try:
            return _str_copy(_type_name(_type(obj)))[:80]
        except _BaseException:
            return "?"

    def spend(n: int) -> None:
        state.nodes += 1
        state.budget -= n
        if state.budget < 0:
            raise NotPlain("value too large")

    def plain(v: Any, depth: int = 0) -> Any:
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

    def dump(v: Any) -> str:
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

    def encode(v: Any, max_bytes: int) -> str:
        state.budget = max_bytes
        state.nodes = 0
        return dump(plain(v))

    def exc_info(e: BaseException) -> str:
        """JSON text describing an exception: type name, plain args, memory and builtin flags."""
        name = type_name(e)
        try:
            args = encode(_exc_args(e), 2000)
        except _BaseException:
            args = "null"
        mem = "true" if _issubclass(_type(e), _MemoryError) else "false"
        builtin = "true" if _dict_get(_builtin_classes, name) is _type(e) else "false"
        return '{"t":' + _enc_str(name) + ',"a":' + args + ',"m":' + mem + ',"b":' + builtin + "}"

    def make_wrapper(fn: Callable[..., Any], max_bytes: int) -> Callable[..., Any]:
        """What test code calls instead of the candidate: the result comes back as plain data."""

        def candidate(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            state.budget = max_bytes
            return plain(result)

        return candidate

    def check(site: int, *thunks: Callable[[], Any]) -> None:
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

    def raised(e: BaseException) -> None:
        """Called when a test unit's own statements raised (outside any checked expression)."""
        if state.dry:
            return
        if state.exc is None:
            state.exc = exc_info(e)

    def tampered(snap: Any) -> str | None:
        """Name of the first watched dict that changed since the snapshot, or None."""
        names, tags = snap
        label: str
        for name, mod in names:
            if _dict_get(_modules, name) is not mod:
                return f"sys.modules[{name!r}]"
        for label, _keep, read, tag, version in tags:
            if read(tag) != version:
                return label
        return None

    def run(
        job: dict[str, Any],
        chan: int,
        nonce: str,
        pristine_builtins: dict[str, Any],
        compiled: Any,
        snap: Any,
    ) -> None:
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
        test_ns: dict[str, Any] = {"__builtins__": pristine_builtins, "__name__": "__mallm_tests__"}
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
                    e.lineno  # type: ignore[attr-defined]  # a SyntaxError
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

    def __init__(
        self,
        run: Callable[..., None],
        encode: Callable[[Any, int], str],
        plain: Callable[..., Any],
        not_plain: type[Exception],
    ) -> None:
        self.run = run
        self.encode = encode
        self.plain = plain
        self.not_plain = not_plain


# --- monkeypatch detection ----------------------------------------------------------------------


def _dict_version_reader() -> Callable[[dict[str, Any]], Any] | None:
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

        def view(d: dict[str, Any]) -> Any:
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

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d
        self.keys = tuple(d)

    @staticmethod
    def read(tag: _IdentityTag) -> tuple[int, ...]:
        return tuple(map(id, map(tag.d.get, tag.keys)))


def _simple_value_getter() -> Any:
    """ctypes' C getter of ``.value`` (the Python-level class attribute could be patched)."""
    try:
        import ctypes

        return ctypes._SimpleCData.__dict__["value"].__get__
    except Exception:  # pragma: no cover - no ctypes: the identity fallback is used
        return None


_SIMPLE_VALUE = _simple_value_getter()


def take_snapshot(module_names: Any, view: Any) -> Any:
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
        tag: Any
        read: Callable[[Any], Any]
        for label, d in watched:
            if view is not None:
                tag, read = view(d), _SIMPLE_VALUE
            else:
                tag, read = _IdentityTag(d), _IdentityTag.read
            tags.append((label, d, read, tag, read(tag)))
    return names, tags
