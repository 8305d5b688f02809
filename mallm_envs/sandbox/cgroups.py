"""A CPU quota for each sandbox worker, through the kernel's cgroups.

Each worker of a judge gets a control group of its own (``mallm-sandbox-<pid>-<n>-w<slot>``)
whose CPU bandwidth is capped at ``cpu_quota`` CPUs: cgroup v2's ``cpu.max`` or, on a host
that still mounts the v1 ``cpu`` controller, ``cpu.cfs_quota_us``. The worker enters it before
it starts (a ``/bin/sh`` trampoline writes to the group's ``cgroup.procs`` and then executes the
worker, or bubblewrap around it), so its server and every process a run starts, in any session,
stay inside: together they never get more than their quota of CPU time per 100 ms period, and a
run that starts busy children cannot slow down programs graded beside it. The group is made
once per worker; a run pays nothing for it. Runs cannot leave their group: in the namespace
modes ``/sys`` is out of their view, on the floor its files belong to root (or are outside
Landlock's rules).

On cgroup v2 the groups lie in the root of the hierarchy (a group that holds processes, such
as the judge's own, cannot hand the cpu controller to children), which gets ``+cpu`` in its
``cgroup.subtree_control`` if it lacks it; on v1 they lie in the judge's own ``cpu`` group.
Where no such group can be made (no CPU controller, a non-root caller without a delegated
subtree, a container whose cgroup root holds processes), the judge goes without and says why in
``Judge.isolation_notes``: then a run can use up to ``max_processes`` CPUs for its time limit.
Groups left by a judge that was killed are removed by the next judge that starts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from dataclasses import dataclass, field

PERIOD_US = 100_000
"""The CFS bandwidth period: the quota is enforced over each such window."""
PREFIX = "mallm-sandbox-"
_COUNTER = itertools.count()
TRAMPOLINE = '{ echo 0 > "$0"; } 2>/dev/null; exec "$@"'
"""Shell code that moves itself into the group whose ``cgroup.procs`` is ``$0``, then executes
the worker's command (a failed move is caught later: the judge checks the worker's group)."""


def _unescape(path: str) -> str:
    """A path from /proc/self/mountinfo (spaces and the like are octal escapes there)."""
    if "\\" not in path:
        return path
    return path.encode().decode("unicode_escape").encode("latin-1").decode(errors="replace")


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of each mount, from /proc/self/mountinfo."""
    out: list[tuple[str, str, str, set[str]]] = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3:
            continue
        out.append((_unescape(fields[3]), _unescape(fields[4]), tail[0], set(tail[2].split(","))))
    return out


def _own_groups(pid: int | str = "self") -> dict[str, str]:
    """This process's cgroup per hierarchy: ``"0"`` for v2, each v1 controller by name."""
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if number == "0" and not controllers:
            out["0"] = path
        for name in controllers.split(","):
            if name:
                out[name] = path
    return out


def _below(mount_root: str, path: str) -> str | None:
    """`path` (as /proc/self/cgroup shows it) relative to a mount of `mount_root`, or None."""
    root = mount_root.rstrip("/")
    if path == root or path.startswith(root + "/"):
        return path[len(root) :]
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


@dataclass
class CpuGroups:
    """The groups of one judge's workers, under one parent group."""

    version: int  # 2 (cpu.max) or 1 (cpu.cfs_quota_us)
    mount: str  # mount point of the hierarchy
    mount_root: str  # the hierarchy's path that is mounted there
    parent: str  # folder of the parent group
    quota: float  # CPUs per worker
    name: str  # prefix of this judge's groups
    made: set[int] = field(default_factory=set)  # slots whose group exists

    def folder(self, slot: int) -> str:
        return os.path.join(self.parent, f"{self.name}-w{slot}")

    def prepare(self, slot: int) -> str:
        """Make the slot's group (once) with its quota; return its ``cgroup.procs`` path."""
        folder = self.folder(slot)
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o755)
        self.made.add(slot)
        quota_us = max(1000, round(self.quota * PERIOD_US))
        if self.version == 2:
            _write(os.path.join(folder, "cpu.max"), f"{quota_us} {PERIOD_US}")
        else:
            _write(os.path.join(folder, "cpu.cfs_period_us"), str(PERIOD_US))
            _write(os.path.join(folder, "cpu.cfs_quota_us"), str(quota_us))
        return os.path.join(folder, "cgroup.procs")

    def holds(self, pid: int, slot: int) -> bool:
        """Whether process `pid` is in the slot's group (read from /proc, as the kernel says)."""
        path = _own_groups(pid).get("0" if self.version == 2 else "cpu")
        if path is None:
            return False
        relative = self.folder(slot)[len(self.mount) :]
        return path == self.mount_root.rstrip("/") + relative

    def remove(self, wait_s: float = 1.0) -> None:
        """Remove the groups (their processes must be gone; they may take a moment to exit)."""
        deadline = time.monotonic() + wait_s
        for slot in sorted(self.made):
            folder = self.folder(slot)
            while os.path.isdir(folder):
                try:
                    os.rmdir(folder)
                except OSError:
                    if time.monotonic() >= deadline:
                        break  # left for the next judge's sweep (see _sweep_stale)
                    time.sleep(0.02)


def _sweep_stale(parent: str) -> None:
    """Remove groups left by judges whose process is gone (e.g. killed before closing)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # its judge still lives
        except ProcessLookupError:
            pass
        except OSError:
            continue
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(parent, name))


def _v2_parent(mount: str, root: str, own: str | None) -> str:
    """A v2 group under which children can get a CPU quota, else raise OSError with why."""
    candidates = []
    relative = _below(root, own) if own is not None else None
    if relative not in (None, ""):
        candidates.append(mount + relative)  # ours: usable only if delegated and leaf-free
    candidates.append(mount)
    why = "no cpu controller in cgroup v2"
    for parent in candidates:
        try:
            if "cpu" not in _read(os.path.join(parent, "cgroup.controllers")).split():
                continue
            control = os.path.join(parent, "cgroup.subtree_control")
            if "cpu" not in _read(control).split():
                _write(control, "+cpu")
            if not os.access(parent, os.W_OK):
                raise PermissionError(f"{parent} is not writable")
            return parent
        except OSError as e:
            why = f"cannot enable the cpu controller below {parent}: {e.strerror or e}"
    raise OSError(why)


def find_cpu_groups(quota: float) -> tuple[CpuGroups | None, str]:
    """Where this judge's workers can get a CPU quota, or None and the reason why not."""
    if not os.path.exists("/bin/sh"):
        return None, "no /bin/sh to move workers into their cgroup"
    own = _own_groups()
    mounts = _mounts()
    name = f"{PREFIX}{os.getpid()}-{next(_COUNTER)}"
    reasons = []
    for root, mount, fstype, _options in mounts:
        if fstype != "cgroup2":
            continue
        try:
            parent = _v2_parent(mount, root, own.get("0"))
        except OSError as e:
            reasons.append(str(e))
            continue
        _sweep_stale(parent)
        return CpuGroups(2, mount, root, parent, quota, name), ""
    for root, mount, fstype, options in mounts:
        if fstype != "cgroup" or "cpu" not in options:
            continue
        relative = _below(root, own.get("cpu", "/"))
        parent = mount + (relative or "")
        if not os.path.isfile(os.path.join(parent, "cpu.cfs_quota_us")):
            reasons.append(f"no CFS bandwidth control in {parent}")
            continue
        if not os.access(parent, os.W_OK):
            reasons.append(f"{parent} is not writable by this user")
            continue
        _sweep_stale(parent)
        return CpuGroups(1, mount, root, parent, quota, name), ""
    return None, "; ".join(reasons) or "no cgroup file system with a cpu controller is mounted"
