"""Sandbox: the runs' seccomp program, read instruction by instruction for each machine.

The worker installs it on x86_64 and aarch64 (``mallm_envs/sandbox/zygote/seccomp.py``); here a
small classic-BPF interpreter runs it on made-up syscalls, so the aarch64 program is checked on
any machine.
What runs actually get is in ``test_sandbox_adversarial.py``.
"""

from __future__ import annotations

import errno
import struct

import pytest

CLONE_THREAD_FLAGS = 0x003D0F00  # what glibc's pthread_create passes to clone()
SIGCHLD = 17
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
ALLOW = "allow"


@pytest.fixture(scope="module")
def zygote():
    from mallm_envs.sandbox.zygote import seccomp

    return seccomp


def run_filter(code: list, arch: int, nr: int, args: tuple = ()) -> str | int:
    """The verdict of a seccomp program: ``"allow"`` or the errno it returns."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    accumulator = 0
    pc = 0
    for _ in range(len(code) + 1):  # no loops in classic BPF: each step moves forward
        assert 0 <= pc < len(code), f"jumped out of the program at {pc}"
        op, jt, jf, k = code[pc]
        if op == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif op == 0x15:  # BPF_JMP | BPF_JEQ | BPF_K
            pc += 1 + (jt if accumulator == k else jf)
        elif op == 0x45:  # BPF_JMP | BPF_JSET | BPF_K
            pc += 1 + (jt if accumulator & k else jf)
        elif op == 0x06:  # BPF_RET | BPF_K
            if k == 0x7FFF0000:
                return ALLOW
            assert k & 0xFFFF0000 == 0x00050000, hex(k)  # SECCOMP_RET_ERRNO
            return k & 0xFFFF
        else:
            raise AssertionError(f"unexpected instruction {op:#x}")
    raise AssertionError("the program did not return")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
@pytest.mark.parametrize("sockets", [True, False], ids=["netns", "no-netns"])
def test_the_filter_allows_its_list_and_refuses_the_rest(zygote, machine, sockets) -> None:
    code = zygote.syscall_filter(machine, sockets)
    numbers = zygote.syscall_numbers(machine)
    arch = zygote.SECCOMP_ARCH[machine]
    assert len(code) <= 4096 and all(jt < 256 and jf < 256 for _, jt, jf, _ in code)

    def verdict(name: str, *args: int) -> str | int:
        return run_filter(code, arch, numbers[name], args)

    for name in zygote.SYSCALLS_ALLOWED:
        if name in numbers and name != "clone":
            assert verdict(name) == ALLOW, name
    for err, names in zygote.SYSCALLS_REFUSED.values():
        for name in names:
            assert verdict(name) == err, name
    for name in ("unshare", "setns", "keyctl", "add_key", "bpf", "io_uring_setup", "shmget"):
        assert verdict(name) == errno.EPERM, name
    assert verdict("clone3") == errno.ENOSYS  # so that the C library falls back to clone()
    assert verdict("clone", SIGCHLD) == ALLOW  # fork
    assert verdict("clone", CLONE_THREAD_FLAGS) == ALLOW  # a thread
    assert verdict("clone", CLONE_NEWUSER | SIGCHLD) == errno.EPERM
    assert verdict("clone", CLONE_NEWNET | SIGCHLD) == errno.EPERM
    mount = {"x86_64": 165, "aarch64": 40}[machine]  # on no list: as if the kernel lacked it
    assert run_filter(code, arch, mount) == errno.ENOSYS
    assert run_filter(code, arch, 0x40000000 | numbers["read"]) == errno.ENOSYS  # x32's numbers
    assert run_filter(code, 0x40000003, numbers["read"]) == errno.EPERM  # i386's ABI
    for family in (1, 2, 10, 16):  # unix, IPv4, IPv6, netlink
        assert verdict("socket", family) == (ALLOW if sockets else errno.EACCES)
    for family in (17, 38, 40):  # packet, kernel crypto, vsock
        assert verdict("socket", family) == (errno.EAFNOSUPPORT if sockets else errno.EACCES)
    assert verdict("socketpair", 1) == ALLOW
