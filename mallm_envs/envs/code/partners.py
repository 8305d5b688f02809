"""Held-out code partners for cross-play: helpers and main authors of different styles.

Cross-play (``mallm evaluate ENV --agent SPEC --cross-play``) pairs an agent with each
partner of its env's population. The code pair envs' population has two helpers (they
take the ``helper`` seat, so the evaluated agent writes the main function) and two main
authors (they take ``main``, so the evaluated agent writes ``aux``). All four are built
from the task's reference solution (HumanEval's canonical solution where a task has no
reference ``aux``), so each is correct in its own way:

``whole-job-helper``
    a correct helper that does another sub-task than the obvious one: its ``aux`` solves
    the whole problem (it takes the entry point's arguments). A main author that assumed
    the obvious ``aux`` calls it with the wrong arguments.
``minimal-helper``
    the least a helper can write: ``aux`` returns its argument unchanged. The main author
    must solve the task alone (and may still call ``aux``).
``solo-main``
    a main author that ignores the helper: it solves the task with its own private
    function and never calls ``aux`` (the tests pass; the cooperation credit is lost).
``delegating-main``
    a main author that relies on the helper for everything: its entry point only returns
    ``aux(...)`` of its own arguments. It scores only with a helper whose ``aux`` solves
    the whole problem.

They read the task from the env, as the scripted :class:`~mallm_envs.envs.code.agents.ReferenceCoder`
does, and answer the same code every turn: deterministic, so ``mallm verify`` re-runs them
and compares their actions with the record. A change to what they write changes the
population's fingerprints and so the cross-play suite's digest (see ``docs/cross-play.md``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from mallm_envs.envs.code.agents import IDENTITY_AUX
from mallm_envs.envs.code.rules import AUX
from mallm_envs.envs.code.tasks import CodeTask

PAIR_IDS = ("CodePair-v0", "CoopCode-v0", "CodePair-v1", "CoopCode-v1")
PRIVATE_HELPER = "_own_step"


class _Renamer(ast.NodeTransformer):
    """Renames functions and the names that refer to them (``old -> new``)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self.names.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.names.get(node.id, node.id)
        return node


def _rename(source: str, names: dict[str, str]) -> str:
    return ast.unparse(_Renamer(names).visit(ast.parse(source)))


def _parts(task: CodeTask) -> tuple[str, str]:
    """(aux, main) of the reference: the task's own split, else identity ``aux`` and the
    canonical solution (which does not call it)."""
    if task.reference_aux is not None:
        return task.reference_aux, task.reference_main
    return IDENTITY_AUX, task.reference_main


def solo_main(task: CodeTask) -> str:
    """The reference main with the reference ``aux`` folded in under a private name.

    >>> from mallm_envs.envs.code.tasks import load_tasks
    >>> code = solo_main(next(iter(load_tasks("coop").values())))
    >>> "aux(" in code, f"{PRIVATE_HELPER}(" in code
    (False, True)
    """
    aux, main = _parts(task)
    if task.reference_aux is None:
        return _rename(main, {})
    return _rename(aux + "\n\n" + main, {AUX: PRIVATE_HELPER})


def whole_job_aux(task: CodeTask) -> str:
    """``aux`` that solves the whole task: the solo main with its entry point renamed."""
    return _rename(solo_main(task), {task.entry_point: AUX})


def _entry(task: CodeTask) -> ast.FunctionDef:
    tree = ast.parse(task.reference_main)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == task.entry_point:
            return node
    raise ValueError(f"{task.task_id}: no top-level def {task.entry_point}")


def delegating_main(task: CodeTask) -> str:
    """The entry point with the reference signature, returning ``aux`` of its arguments."""
    entry = _entry(task)
    args = entry.args
    call: list[str] = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        call.append(f"*{args.vararg.arg}")
    call += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg is not None:
        call.append(f"**{args.kwarg.arg}")
    signature = ast.unparse(args)
    return f"def {task.entry_point}({signature}):\n    return {AUX}({', '.join(call)})\n"


class _CodePartner:
    name = ""
    seat = ""
    style = ""

    def __init__(self, env: Any, agent: str) -> None:
        if agent != self.seat:
            raise ValueError(f"the {self.name} partner takes the {self.seat!r} seat, not {agent!r}")
        self.env = env.unwrapped
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        pass

    def code(self, task: CodeTask) -> str:
        raise NotImplementedError

    def act(self, observation: Any, info: Any) -> str:
        return f"```python\n{self.code(self.env.task).rstrip()}\n```"

    def describe(self) -> dict[str, Any]:
        return {"class": "partner", "partner": self.name, "style": self.style}


class WholeJobHelper(_CodePartner):
    """See the module docstring."""

    name, seat = "whole-job-helper", "helper"
    style = "aux solves the whole problem (another sub-task than the obvious one)"

    def code(self, task: CodeTask) -> str:
        return whole_job_aux(task)


class MinimalHelper(_CodePartner):
    """See the module docstring."""

    name, seat = "minimal-helper", "helper"
    style = "aux returns its argument unchanged"

    def code(self, task: CodeTask) -> str:
        return IDENTITY_AUX


class SoloMain(_CodePartner):
    """See the module docstring."""

    name, seat = "solo-main", "main"
    style = "solves the task alone and never calls aux"

    def code(self, task: CodeTask) -> str:
        return solo_main(task)


class DelegatingMain(_CodePartner):
    """See the module docstring."""

    name, seat = "delegating-main", "main"
    style = "returns aux(...) of its own arguments and nothing else"

    def code(self, task: CodeTask) -> str:
        return delegating_main(task)


PARTNER_CLASSES = (WholeJobHelper, MinimalHelper, SoloMain, DelegatingMain)


def population(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The held-out partners of ``env_id`` (``None`` for an id without a population).

    Each partner plays every episode of the suite in its one seat.
    """
    if env_id not in PAIR_IDS:
        return None
    partners = [
        {
            "name": cls.name,
            "factory": f"{__name__}:{cls.__name__}",
            "roles": [cls.seat],
            "description": cls.style,
        }
        for cls in PARTNER_CLASSES
    ]
    return {"episodes_per_seat": None, "partners": partners}


__all__ = ["population", *(cls.__name__ for cls in PARTNER_CLASSES)]
