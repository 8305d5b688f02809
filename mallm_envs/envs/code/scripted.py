"""Scripted reference agents for the code envs (an oracle baseline, not a model).

:class:`ReferenceCoder` reads the current task from the env and submits the task's reference
solution for its role, in a fenced code block:

* CoopCode (``task_set="coop"``): the helper submits the reference ``aux``, the main agent
  the reference main function, a single coder both. These score the full 4.0.
* HumanEval (``task_set="humaneval"``), which has no helper/main split: the helper submits a
  trivial but valid ``aux`` (it returns its argument unchanged) and the main agent submits
  HumanEval's *canonical solution* with one extra first line, ``x = aux(x)`` for its first
  parameter ``x``. The program behaves exactly like the canonical solution, uses ``aux``
  and is not a thin wrapper, so it also scores 4.0. Since it submits the canonical
  solution, it is an oracle: use it to check the env and the grading, never as a
  baseline to beat.

It knows the answer only because it reads ``env.unwrapped.task``; it ignores the
observation. In later turns (there are none after a success) it submits the same code.
"""

from __future__ import annotations

import ast
from typing import Any

from mallm_envs.envs.code.rules import AUX
from mallm_envs.envs.code.tasks import CodeTask

IDENTITY_AUX = f'def {AUX}(value):\n    """Return `value` unchanged (a placeholder helper)."""\n    return value\n'


def canonical_main_using_aux(task: CodeTask) -> str:
    """``task.reference_main`` with ``x = aux(x)`` inserted before its first statement, for
    its first parameter ``x``: with the identity ``aux`` it behaves as before.

    >>> from mallm_envs.envs.code.tasks import load_tasks
    >>> print(canonical_main_using_aux(load_tasks("humaneval")["HumanEval/2"]).splitlines()[-2])
        number = aux(number)
    """
    source = task.reference_main
    tree = ast.parse(source)
    entry = next(
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == task.entry_point
    )
    parameters = [*entry.args.posonlyargs, *entry.args.args]
    if not parameters:
        raise ValueError(f"{task.task_id}: the entry point takes no positional parameter")
    name = parameters[0].arg
    body = entry.body
    first = body[1] if len(body) > 1 and _is_docstring(body[0]) else body[0]
    lines = source.splitlines(keepends=True)
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f"{indent}{name} = {AUX}({name})\n")
    return "".join(lines)


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def reference_code(task: CodeTask, role: str) -> str:
    """The reference code of ``role`` (``"helper"``, ``"main"`` or ``"coder"``) for ``task``."""
    if task.reference_aux is not None:
        aux, main = task.reference_aux, task.reference_main
    else:
        aux, main = IDENTITY_AUX, canonical_main_using_aux(task)
    if role == "helper":
        return aux
    if role == "main":
        return main
    if role == "coder":
        return aux.rstrip() + "\n\n\n" + main
    raise ValueError(f"unknown role {role!r}; the code envs' roles are helper, main and coder")


class ReferenceCoder:
    """Submits the reference solution of its role (see the module docstring)."""

    def __init__(self, env: Any, agent: str) -> None:
        self.env = env.unwrapped
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        code = reference_code(self.env.task, self.agent)
        return f"```python\n{code.rstrip()}\n```"

    def describe(self) -> dict[str, Any]:
        return {"class": "scripted", "policy": "reference solution (oracle)"}
