"""Landlock: the file-system, TCP and signal rules of runs where namespaces are missing.

The server builds one ruleset (Linux 5.13+; TCP from ABI 4, signal and abstract-socket
scopes from ABI 6) and every run enters it before its program starts. Part of the worker
program (see :mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import os

from mallm_envs.sandbox.zygote.linux import LIBC

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


def landlock_read_paths(view: list[list[str]]) -> list[str]:
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
    fd: int = LIBC.syscall(ctypes.c_long(LANDLOCK_CREATE_RULESET), ctypes.byref(attr), size, 0)
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
