"""Namespaces and mounts: the worker's own network, PID, mount, IPC and UTS namespaces, and
the read-only minimal root it pivots into (``isolation="auto"``).

Part of the worker program (see :mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import contextlib
import os

from mallm_envs.sandbox.zygote.linux import LIBC, _call, _syscall

# --- Linux constants (values from <sched.h>, <sys/mount.h>) -----------------------------------

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


def _mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    enc = [None if x is None else x.encode() for x in (source, target, fstype, data)]
    _call("mount", enc[0], enc[1], enc[2], flags, enc[3])


def _write_id_maps(uid: int, gid: int) -> None:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def unshare_namespaces(layers: list[str], notes: list[str]) -> None:
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


def minimal_root(view: list[list[str]], scratch_mb: int, proc: bool) -> None:
    """pivot_root into a tmpfs holding the read-only view the judge computed (view.py).

    ``view`` is the judge's list of operations (bind, mask, link), ``scratch_mb`` the size of
    the runs' private ``/tmp``; ``proc``: mount a fresh ``/proc`` (in a PID namespace only).
    """
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    view = [op for op in view if op[0] != "bind" or os.path.lexists(op[1])]
    needed = [os.path.realpath(op[1]) for op in view if op[0] == "bind"]
    base = next(
        b
        for b in ("/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/opt", "/run")
        if os.path.isdir(b) and not any(n == b or n.startswith(b + "/") for n in needed)
    )
    _mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    try:
        _populate_root(base, view, scratch_mb, proc)
    except OSError:
        with contextlib.suppress(OSError):  # uncover the host folder for the fallback
            _call("umount2", base.encode(), MNT_DETACH)
        raise


def _populate_root(base: str, view: list[list[str]], scratch_mb: int, proc: bool) -> None:
    os.makedirs(base + "/tmp", exist_ok=True)  # first: the view may show paths below it
    size = int(scratch_mb)
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
    if proc:
        _mount("proc", base + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    os.makedirs(base + "/.old", exist_ok=True)
    os.chdir(base)
    _syscall("pivot_root", b".", b".old")
    os.chdir("/")
    _call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)


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
