"""The worker's start-up: namespaces, privileges, the syscall filter, then the server.

Runs as the worker program's entry point: ``python -s -S`` started by the judge, with the
worker's configuration (JSON) as its only argument. Part of the worker program (see
:mod:`mallm_envs.sandbox.zygote`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys

from mallm_envs.sandbox.zygote.framing import write_frame
from mallm_envs.sandbox.zygote.linux import (
    LIBC,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAPBSET_DROP,
    PR_SET_CHILD_SUBREAPER,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    _drop_capabilities,
    _prctl,
    resource,
)
from mallm_envs.sandbox.zygote.namespaces import unshare_namespaces
from mallm_envs.sandbox.zygote.seccomp import install_syscall_filter
from mallm_envs.sandbox.zygote.server import Server


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
