"""Sandbox: the judge's configuration, the worker command (built without starting a process),
the worker program joined from its parts, and the code envs' judge settings."""

from __future__ import annotations

import dataclasses
import json
import types
import warnings
from pathlib import Path

import pytest

from mallm_envs.envs.code import grading
from mallm_envs.sandbox import Judge, JudgeConfig, Limits, LimitsError, TestCase, TestSuite, zygote
from mallm_envs.sandbox.cgroups import TRAMPOLINE
from mallm_envs.sandbox.config import WORKER_ENV, Host, sandbox_uids, worker_command
from mallm_envs.sandbox.errors import SandboxError
from mallm_envs.sandbox.pool import SOURCE_STUB, WORKER_STUB

VIEW = [["bind", "/usr"], ["mask", "/usr/lib/python3/dist-packages"], ["link", "/lib", "usr/lib"]]


def host(**changes: object) -> Host:
    base = Host(
        executable="/usr/bin/python3.11",
        compiled=True,
        view=VIEW,
        bwrap=None,
        root=False,
        uid_offset=512,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --- JudgeConfig ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("limits", "fast"),
        ("workers", 0),
        ("workers", 257),
        ("workers", True),
        ("workers", 2.0),
        ("isolation", "vm"),
        ("scratch_mb", 0),
        ("uid_base", 0),
        ("uid_base", 2**32),
        ("landlock", "yes"),
        ("cpu_quota", 0),
        ("cpu_quota", "1"),
        ("cpu_quota", True),
        ("allow_site_packages", 1),
        ("readable_paths", "/etc"),
        ("preload", "json"),
        ("python", 3),
    ],
)
def test_impossible_settings_fail_where_the_config_is_born(field: str, value: object) -> None:
    with pytest.raises(LimitsError, match=field if field != "limits" else "Limits"):
        JudgeConfig(**{field: value})  # type: ignore[arg-type]


def test_the_config_is_frozen_and_normalised() -> None:
    config = JudgeConfig(readable_paths=[Path("/srv/data")], preload=["json", "re"])  # type: ignore[arg-type]
    assert config.readable_paths == ("/srv/data",)
    assert config.preload == ("json", "re")
    assert config == JudgeConfig(readable_paths=("/srv/data",), preload=("json", "re"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 3  # type: ignore[misc]


def test_judge_keywords_are_the_config_fields() -> None:
    with pytest.raises(LimitsError, match="workers"):
        Judge(workers=0)
    with pytest.raises(LimitsError, match="config must be a JudgeConfig"):
        Judge.from_config({"workers": 1})  # type: ignore[arg-type]


# --- worker_command: pure --------------------------------------------------------------------


def test_worker_command_for_a_plain_worker() -> None:
    config = JudgeConfig(isolation="process", scratch_mb=32, landlock=False)
    command = worker_command(config, host(), 3, scratch_root="/tmp/j/w3")
    assert command.argv[:6] == ("/usr/bin/python3.11", "-s", "-S", "-B", "-c", WORKER_STUB)
    cfg = json.loads(command.argv[-1])
    assert cfg == command.config
    assert cfg["namespaces"] is False and cfg["outer"] is None and cfg["landlock"] is False
    assert cfg["scratch_root"] == "/tmp/j/w3" and cfg["scratch_mb"] == 32
    assert cfg["view"] == VIEW and "uid" not in cfg and "preload" not in cfg
    assert cfg["warmup"]["entry"] == "double"
    assert cfg["warmup"]["limits"] == config.limits.to_request()
    assert dict(command.env) == dict(WORKER_ENV)
    assert command.stdin_program == "compiled"
    # Pure: the same inputs give the same command, and nothing was started or made.
    assert worker_command(config, host(), 3, scratch_root="/tmp/j/w3") == command
    assert not Path("/tmp/j/w3").exists()


def test_worker_command_variants() -> None:
    config = JudgeConfig(allow_site_packages=True, preload=("json",), limits=Limits(timeout_s=1))
    command = worker_command(config, host(compiled=False), 0, scratch_root="/s")
    assert command.argv[1:5] == ("-s", "-B", "-c", SOURCE_STUB)
    assert command.stdin_program == "source"
    cfg = json.loads(command.argv[-1])
    assert cfg["namespaces"] is True and cfg["preload"] == ["json"]
    assert cfg["warmup"]["limits"]["timeout_s"] == 1
    # In a CPU group: a trampoline enters it first, then runs the same command.
    grouped = worker_command(config, host(), 0, scratch_root="/s", cpu_procs="/cg/w0/procs")
    assert grouped.argv[:5] == ("/bin/sh", "-c", TRAMPOLINE, "/cg/w0/procs", "/usr/bin/python3.11")
    # Outside bubblewrap a worker needs its scratch folder.
    with pytest.raises(ValueError, match="scratch_root"):
        worker_command(config, host(), 0)


def test_worker_command_as_root_and_in_bubblewrap() -> None:
    config = JudgeConfig(isolation="bwrap", uid_base=2_000_000)
    root = host(bwrap="/usr/bin/bwrap", root=True)
    uids = sandbox_uids(config, root)
    assert uids == range(2_000_512, 2_000_512 + 256)
    assert sandbox_uids(config, host()) == range(0)
    command = worker_command(config, root, 257)
    argv = list(command.argv)
    assert argv[0] == "/usr/bin/bwrap" and "--new-session" in argv
    assert "--unshare-net" in argv and "--unshare-all" not in argv  # root: no user namespace
    assert argv[argv.index("--ro-bind") : argv.index("--ro-bind") + 3] == [
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    assert argv[argv.index("--") + 1] == "/usr/bin/python3.11"
    cfg = json.loads(argv[-1])
    assert cfg["uid"] == cfg["gid"] == uids[1]  # slot 257 wraps around to the second uid
    assert cfg["outer"] == "bwrap" and cfg["scratch_root"] == "/tmp" and cfg["scratch_private"]
    user = worker_command(config, host(bwrap="/usr/bin/bwrap"), 0)
    assert "--unshare-all" in user.argv and "uid" not in user.config


# --- the worker program: parts joined into one code object ----------------------------------


def _code_objects(code: types.CodeType) -> list[types.CodeType]:
    out = [code]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out += _code_objects(const)
    return out


def test_the_worker_program_is_its_parts_joined() -> None:
    program = zygote.program()
    assert [Path(path).stem for path, _, _ in program.parts] == list(zygote.PARTS)
    assert "from mallm_envs" not in program.source  # imports between parts are left out
    assert program.source.count("from __future__ import annotations") == 1
    assert program.source.splitlines()[-1].strip() == "_main_reporting_errors()"
    code = zygote.compiled()
    assert code is zygote.compiled()  # compiled once per process
    names = set(code.co_names)
    assert {"Server", "make_harness", "syscall_filter", "landlock_ruleset", "main"} <= names


def test_each_function_of_the_worker_keeps_its_file_and_lines() -> None:
    for code in _code_objects(zygote.compiled())[1:]:
        path = Path(code.co_filename)
        assert path.parent == zygote.FOLDER and path.stem in zygote.PARTS, code
        if code.co_name.startswith("<"):  # comprehensions, lambdas: inside a function
            continue
        lines = path.read_text().splitlines()
        i = code.co_firstlineno - 1
        while lines[i].strip().startswith("@"):  # a decorated function starts at its decorator
            i += 1
        words = lines[i].replace("(", " ").replace(":", " ").split()
        assert words[:2] in (["def", code.co_name], ["class", code.co_name]), (path.name, i + 1)


def test_parts_may_not_define_a_name_twice(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "one.py").write_text('"""One."""\nfrom __future__ import annotations\nX = 1\n')
    (tmp_path / "two.py").write_text(
        "from __future__ import annotations\n\nfrom mallm_envs.sandbox.zygote.one import X\n\n"
        "def X():\n    return 2\n"
    )
    monkeypatch.setattr(zygote, "FOLDER", tmp_path)
    monkeypatch.setattr(zygote, "PARTS", ("one", "two"))
    with pytest.raises(zygote.ProgramError, match=r"'X' is defined by both one\.py and two\.py"):
        zygote.program.__wrapped__()
    (tmp_path / "two.py").write_text(
        "def f():\n    from mallm_envs.sandbox.zygote.one import X\n    return X\n"
    )
    with pytest.raises(zygote.ProgramError, match="at the top only"):
        zygote.program.__wrapped__()
    (tmp_path / "two.py").write_text(
        "from __future__ import annotations\n\nfrom mallm_envs.sandbox.zygote.one import X\n\n"
        "Y = X + 1\n"
    )
    joined = zygote.program.__wrapped__()
    namespace: dict[str, object] = {}
    exec(compile(joined.source, "<joined>", "exec"), namespace)
    assert namespace["Y"] == 2
    assert joined.parts[1][1] == 4  # two.py starts on the joined program's fourth line


def test_a_worker_of_another_bytecode_format_gets_the_source(monkeypatch) -> None:
    """The stub that compiles the joined source (a worker Python of another version) works."""
    import mallm_envs.sandbox.judge as judge_module

    real = judge_module.discover_host
    monkeypatch.setattr(
        judge_module, "discover_host", lambda c: dataclasses.replace(real(c), compiled=False)
    )
    suite = TestSuite([TestCase("candidate(2, 3)", expected=5)], entry_point="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judge = Judge(Limits(timeout_s=2.0), workers=1, isolation="process", cpu_quota=None)
    with judge:
        assert judge.grade("def add(a, b):\n    return a + b\n", suite).all_passed
        assert judge.grade("def add(a, b):\n    return a - b\n", suite).passed == 0


# --- the code envs' judge ----------------------------------------------------------------------


@pytest.fixture
def fresh_shared_judge(monkeypatch):
    monkeypatch.delenv(grading.ISOLATION_ENV, raising=False)
    monkeypatch.delenv(grading.WORKERS_ENV, raising=False)
    grading._close_judge()
    grading.configure_judge()
    yield
    monkeypatch.delenv(grading.ISOLATION_ENV, raising=False)
    monkeypatch.delenv(grading.WORKERS_ENV, raising=False)
    grading._close_judge()
    grading.configure_judge()


def test_configure_judge_chooses_isolation_and_workers(fresh_shared_judge) -> None:
    grading.configure_judge(isolation="process", workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judge = grading.shared_judge()
    assert judge.config.isolation == "process" and judge.config.workers == 1
    assert judge.config.limits == Limits()
    assert "pidns" not in judge.isolation_layers
    grading.configure_judge(isolation="process", workers=1)  # the same settings: fine
    with pytest.raises(SandboxError, match="already started"):
        grading.configure_judge(workers=2)


def test_the_judge_settings_come_from_the_environment(fresh_shared_judge, monkeypatch) -> None:
    monkeypatch.setenv(grading.ISOLATION_ENV, "process")
    monkeypatch.setenv(grading.WORKERS_ENV, "3")
    config = grading._judge_config({})
    assert (config.isolation, config.workers) == ("process", 3)
    config = grading._judge_config({"isolation": "auto", "workers": None})
    assert (config.isolation, config.workers) == ("auto", 3)  # configure_judge wins
    monkeypatch.setenv(grading.WORKERS_ENV, "many")
    with pytest.raises(LimitsError, match="MALLM_JUDGE_WORKERS"):
        grading._judge_config({})
    monkeypatch.setenv(grading.WORKERS_ENV, "1")
    monkeypatch.setenv(grading.ISOLATION_ENV, "vm")
    with pytest.raises(LimitsError, match="MALLM_JUDGE_ISOLATION"):
        grading._judge_config({})
    monkeypatch.delenv(grading.ISOLATION_ENV)
    monkeypatch.delenv(grading.WORKERS_ENV)
    with pytest.raises(LimitsError, match="workers"):
        grading.configure_judge(workers=0)
    default = grading._judge_config({})
    assert default.isolation == "auto" and 1 <= default.workers <= grading.MAX_WORKERS
