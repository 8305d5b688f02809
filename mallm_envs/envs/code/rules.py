"""Rules of code pair-writing: reading code out of an action, building the program, reward.

Pure functions on text and :mod:`ast` trees; nothing here runs submitted code (the tests run
in :mod:`mallm_envs.sandbox`, outside this process) and nothing imports PettingZoo or
Gymnasium.

The reward follows the paper's gated levels (a failed gate stops the sum; every component
is reported, unpaid ones as 0):

============================  =====  ==============================================
component                     value  paid when
============================  =====  ==============================================
``structure_aux``             0.4    the helper's code defines ``aux`` with a return
``structure_main``            0.6    the main code defines the entry point with a
                                     return; **required**, else stop
``syntax``                    0.5    the combined program compiles; else stop
``tests``                     0-1    passed tests / all tests
``coop_calls_aux``            0.5    at least one test passes, ``aux`` is defined
                                     and the entry point uses ``aux``
``coop_not_wrapper``          1.0    ... and the entry point is more than a thin
                                     wrapper around ``aux``
``coop_ignored_result``       -0.5   ... and the entry point calls ``aux`` as a bare
                                     statement, ignoring its result
============================  =====  ==============================================

The maximum is 4.0. The two last cooperation terms only apply when the entry point uses
``aux`` (as in the paper's code).

>>> helper = "```python\\ndef aux(x):\\n    return x * 2\\n```"
>>> main = "def double_all(xs):\\n    out = []\\n    for x in xs:\\n        out.append(aux(x))\\n    return out"
>>> analysis = analyze("", "double_all", extract_code(helper), extract_code(main))
>>> grade = score(analysis, passed=3, total=3)
>>> grade.reward, grade.components["coop_not_wrapper"]
(4.0, 1.0)
>>> score(analyze("", "double_all", "", "def double_all(xs):\\n    pass"), 0, 3).reward
0.0
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any

AUX = "aux"
STRUCTURE_AUX = 0.4
STRUCTURE_MAIN = 0.6
SYNTAX = 0.5
TESTS = 1.0
COOP_CALLS_AUX = 0.5
COOP_NOT_WRAPPER = 1.0
COOP_IGNORED_RESULT = -0.5
MAX_REWARD = STRUCTURE_AUX + STRUCTURE_MAIN + SYNTAX + TESTS + COOP_CALLS_AUX + COOP_NOT_WRAPPER
COMPONENTS = (
    "structure_aux",
    "structure_main",
    "syntax",
    "tests",
    "coop_calls_aux",
    "coop_not_wrapper",
    "coop_ignored_result",
)

# An opening fence of three backticks, an optional language tag and the rest of that line;
# the block ends at the next three backticks or, when the text was cut off, at its end.
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.#-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})
_KEPT_STATEMENTS = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


def extract_code(text: str) -> str:
    """The Python code in an action: the first fenced block tagged ``python`` (or ``py``,
    ``python3``) or untagged; the whole text when there is none. An unclosed fence runs to
    the end of the text (a generation cut off by a token limit). Common indentation is
    removed and blank lines at both ends are dropped.

    >>> extract_code("Here it is:\\n```python\\ndef f():\\n    return 1\\n```\\nDone.")
    'def f():\\n    return 1'
    >>> extract_code("```bash\\nls\\n```\\n```\\nx = 1\\n```")
    'x = 1'
    >>> extract_code("def g():\\n    return 2\\n")
    'def g():\\n    return 2'
    >>> extract_code("```python\\ndef h():\\n    return 3")
    'def h():\\n    return 3'
    """
    for match in _FENCE.finditer(text):
        if match.group(1).lower() in PYTHON_TAGS:
            code = match.group(2)
            break
    else:
        code = text
    return textwrap.dedent(code).strip("\n").rstrip()


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class Part:
    """One agent's code as it enters the program.

    Attributes:
        code: the code extracted from the action.
        kept: the code that goes into the program (``code`` without the dropped statements;
            ``code`` itself when it does not parse).
        tree: the parsed ``kept`` code, or ``None`` when ``code`` does not parse.
        syntax_error: ``"line N: message"`` when ``code`` does not parse.
        notes: what was dropped, for the agents' feedback.
        future: the code's ``from __future__`` imports (they go to the top of the program).
    """

    code: str
    kept: str
    tree: ast.Module | None
    syntax_error: str | None = None
    notes: tuple[str, ...] = ()
    future: tuple[str, ...] = ()

    def function(self, name: str) -> ast.FunctionDef | None:
        """The last top-level ``def name`` (the one Python would keep), or ``None``."""
        if self.tree is None:
            return None
        found = None
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                found = node
        return found


def _parse(code: str) -> ast.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning/DeprecationWarning on odd literals
        return ast.parse(code)


def _syntax_message(err: BaseException) -> str:
    if isinstance(err, SyntaxError):
        where = f"line {err.lineno}: " if err.lineno else ""
        return f"{where}{err.msg}"
    if isinstance(err, RecursionError):
        return "the code is nested too deeply to compile"
    return f"the code cannot be compiled ({type(err).__name__})"


_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def _describe_dropped(node: ast.stmt) -> str:
    if (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    ):
        return "an `if __name__ == '__main__':` block"
    kinds = {
        ast.Expr: "an expression statement (a call or print)",
        ast.If: "an if statement",
        ast.For: "a for loop",
        ast.While: "a while loop",
        ast.Assert: "an assert",
        ast.Try: "a try statement",
        ast.With: "a with statement",
    }
    return kinds.get(type(node), f"a top-level {type(node).__name__} statement")


def _segment(code: str, node: ast.stmt) -> str:
    text = ast.get_source_segment(code, node) or ast.unparse(node)
    decorators = getattr(node, "decorator_list", [])
    if decorators:
        text = "\n".join([*(f"@{ast.get_source_segment(code, d)}" for d in decorators), text])
    return text


def make_part(code: str, *, drop_functions: tuple[str, ...] = ()) -> Part:
    """Parse one agent's code and keep what belongs in the program.

    Kept: top-level imports, ``def`` and ``class`` definitions and assignments
    (``from __future__`` imports are set aside in ``future``). Dropped, with
    a note: other top-level statements (example calls, prints, ``if __name__ ==
    "__main__":`` blocks, asserts, loops) and top-level ``def`` of the names in
    ``drop_functions`` (the partner's function).

    >>> part = make_part("def aux(x):\\n    return x\\nprint(aux(2))\\ndef main():\\n    return 0", drop_functions=("main",))
    >>> print(part.kept)
    def aux(x):
        return x
    >>> part.notes[0]
    'line 3: dropped an expression statement (a call or print); only imports, definitions and assignments are kept'
    """
    try:
        tree = _parse(code)
    except _PARSE_ERRORS as err:
        return Part(code=code, kept=code, tree=None, syntax_error=_syntax_message(err))
    kept: list[str] = []
    future: list[str] = []
    notes: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            future.append(_segment(code, node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
            node.name in drop_functions
        ):
            notes.append(
                f"line {node.lineno}: dropped your definition of `{node.name}` (your partner writes it)"
            )
        elif isinstance(node, _KEPT_STATEMENTS):
            kept.append(_segment(code, node))
        else:
            notes.append(
                f"line {node.lineno}: dropped {_describe_dropped(node)}; only imports, "
                "definitions and assignments are kept"
            )
    if not notes and not future:
        return Part(code=code, kept=code, tree=tree)
    kept_code = "\n\n".join(kept)
    return Part(
        code=code,
        kept=kept_code,
        tree=_parse(kept_code),
        notes=tuple(notes),
        future=tuple(future),
    )


# --------------------------------------------------------------------------- analysis


def _own_nodes(function: ast.FunctionDef) -> list[ast.AST]:
    """Nodes of ``function``'s body, not descending into nested functions, lambdas, classes."""
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = [n for n in function.body if not isinstance(n, scopes)]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(c for c in ast.iter_child_nodes(node) if not isinstance(c, scopes))
    return nodes


def returns_value(function: ast.FunctionDef | None) -> bool:
    """True when ``function`` has a ``return <value>`` of its own (not in a nested function).

    >>> returns_value(_parse("def f():\\n    return 1").body[0])
    True
    >>> returns_value(_parse("def f():\\n    def g():\\n        return 1\\n    g()").body[0])
    False
    """
    if function is None:
        return False
    return any(isinstance(n, ast.Return) and n.value is not None for n in _own_nodes(function))


def _is_aux_call(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == AUX


def _body_without_docstring(function: ast.FunctionDef) -> list[ast.stmt]:
    body = list(function.body)
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return body


def uses_aux(function: ast.FunctionDef) -> bool:
    """True when ``function`` (functions nested in it included) calls ``aux`` or passes it on
    (``map(aux, xs)``, ``sorted(xs, key=aux)``)."""
    return any(
        isinstance(n, ast.Name) and n.id == AUX and isinstance(n.ctx, ast.Load)
        for n in ast.walk(function)
    )


def is_thin_wrapper(function: ast.FunctionDef) -> bool:
    """True when the body (docstring aside) is empty (only ``pass`` or ``...``), a single
    ``return aux(...)``, or ``name = aux(...)`` followed by ``return name``.

    >>> is_thin_wrapper(_parse("def f(x):\\n    '''Doc.'''\\n    return aux(x)").body[0])
    True
    >>> is_thin_wrapper(_parse("def f(x):\\n    y = aux(x)\\n    return y + 1").body[0])
    False
    """
    body = [
        s
        for s in _body_without_docstring(function)
        if not isinstance(s, ast.Pass)
        and not (
            isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Constant)
            and s.value.value is Ellipsis
        )
    ]
    if not body:
        return True
    if len(body) == 1:
        return isinstance(body[0], ast.Return) and _is_aux_call(body[0].value)
    if len(body) == 2:
        first, second = body
        return (
            isinstance(first, ast.Assign)
            and len(first.targets) == 1
            and isinstance(first.targets[0], ast.Name)
            and _is_aux_call(first.value)
            and isinstance(second, ast.Return)
            and isinstance(second.value, ast.Name)
            and second.value.id == first.targets[0].id
        )
    return False


def ignores_aux_result(function: ast.FunctionDef) -> bool:
    """True when ``function`` calls ``aux(...)`` as a bare statement, dropping its result."""
    return any(isinstance(n, ast.Expr) and _is_aux_call(n.value) for n in ast.walk(function))


@dataclass(frozen=True)
class Analysis:
    """Everything about a submission that is decided without running it.

    Attributes:
        helper, main: the two parts (the same object twice for a single coder).
        entry_point: the main function's name.
        program: context + helper code + main code, as the sandbox will run it.
        aux_defined: the helper defines ``aux`` with a return.
        main_defined: the main code defines the entry point with a return.
        syntax_error: why the program does not compile, or ``None``.
        uses_aux, thin_wrapper, ignores_aux: the cooperation checks on the entry point.
    """

    helper: Part
    main: Part
    entry_point: str
    program: str
    aux_defined: bool
    main_defined: bool
    syntax_error: str | None
    uses_aux: bool = False
    thin_wrapper: bool = False
    ignores_aux: bool = False

    @property
    def runnable(self) -> bool:
        """True when the tests should run (the structure and syntax gates passed)."""
        return self.main_defined and self.syntax_error is None


def compile_error(program: str) -> str | None:
    """Why ``program`` does not compile (``"line N: message"``), or ``None``.

    Compiling does not run anything; it also catches what parsing alone lets through
    (``return`` outside a function, a misplaced ``from __future__`` import).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(program, "<program>", "exec", dont_inherit=True)
    except _PARSE_ERRORS as err:
        return _syntax_message(err)
    return None


def assemble(context: str, helper: Part, main: Part) -> str:
    """The program the tests import: the prompt's context, then the helper's code, then the
    main code (a later definition of a name wins, as in any Python module). The parts'
    ``from __future__`` imports go first, where Python requires them."""
    parts = [helper, main] if helper is not main else [main]
    future = list(dict.fromkeys(line for part in parts for line in part.future))
    pieces = ["\n".join(future), context, *(part.kept for part in parts)]
    return "\n\n\n".join(p for p in pieces if p.strip()) + "\n"


def analyze(context: str, entry_point: str, helper_code: str, main_code: str) -> Analysis:
    """Decide the structure and syntax levels and the cooperation checks for a pair.

    ``helper_code`` and ``main_code`` are extracted code (see :func:`extract_code`). The
    helper's definition of the entry point and the main code's definition of ``aux`` are
    dropped: each agent writes its own function.
    """
    helper = make_part(helper_code, drop_functions=(entry_point,))
    main = make_part(main_code, drop_functions=(AUX,))
    return _analyze(context, entry_point, helper, main)


def analyze_single(context: str, entry_point: str, code: str) -> Analysis:
    """Like :func:`analyze` for one coder who writes both ``aux`` and the entry point."""
    part = make_part(code)
    return _analyze(context, entry_point, part, part)


def _analyze(context: str, entry_point: str, helper: Part, main: Part) -> Analysis:
    aux = helper.function(AUX)
    entry = main.function(entry_point)
    aux_defined = returns_value(aux)
    main_defined = returns_value(entry)
    program = assemble(context, helper, main)
    syntax_error = compile_error(program) if main_defined else None
    if entry is None or not main_defined:
        return Analysis(helper, main, entry_point, program, aux_defined, main_defined, syntax_error)
    return Analysis(
        helper,
        main,
        entry_point,
        program,
        aux_defined,
        main_defined,
        syntax_error,
        uses_aux=uses_aux(entry),
        thin_wrapper=is_thin_wrapper(entry),
        ignores_aux=ignores_aux_result(entry),
    )


# --------------------------------------------------------------------------- reward


@dataclass(frozen=True)
class Score:
    """The team reward of one submission and its named components."""

    reward: float
    components: dict[str, float]
    stopped_at: str | None  # the gate that stopped the sum: "structure", "syntax" or None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reward": self.reward,
            "components": dict(self.components),
            "stopped_at": self.stopped_at,
        }


def score(analysis: Analysis, passed: int, total: int) -> Score:
    """The gated reward for ``analysis`` when ``passed`` of ``total`` tests passed.

    ``passed`` is ignored when the gates stopped the sum before the tests.
    """
    components = dict.fromkeys(COMPONENTS, 0.0)
    if analysis.aux_defined:
        components["structure_aux"] = STRUCTURE_AUX
    stopped_at = None
    if not analysis.main_defined:
        stopped_at = "structure"
    else:
        components["structure_main"] = STRUCTURE_MAIN
        if analysis.syntax_error is not None:
            stopped_at = "syntax"
        else:
            components["syntax"] = SYNTAX
            if total > 0:
                components["tests"] = TESTS * passed / total
            if passed > 0 and analysis.aux_defined and analysis.uses_aux:
                components["coop_calls_aux"] = COOP_CALLS_AUX
                if not analysis.thin_wrapper:
                    components["coop_not_wrapper"] = COOP_NOT_WRAPPER
                if analysis.ignores_aux:
                    components["coop_ignored_result"] = COOP_IGNORED_RESULT
    reward = round(sum(components.values()), 12)
    return Score(reward=reward, components=components, stopped_at=stopped_at)


def score_v1(analysis: Analysis, passed: int, total: int) -> Score:
    """The v1 score of one program: the gated levels of :func:`score`, with the cooperation
    credit scaled by the fraction of tests passed (``passed / total``) instead of paid in full
    from the first passing test.

    A program that passes every test and really uses ``aux`` scores the maximum, 4.0; one
    that fails a test scores less than the same program passing it.

    >>> helper = "def aux(x):\\n    return x * 2"
    >>> main = "def double_all(xs):\\n    out = []\\n    for x in xs:\\n        out.append(aux(x))\\n    return out"
    >>> analysis = analyze("", "double_all", helper, main)
    >>> score_v1(analysis, passed=4, total=4).reward
    4.0
    >>> one = score_v1(analysis, passed=1, total=4)
    >>> one.reward, one.components["coop_calls_aux"], one.components["coop_not_wrapper"]
    (2.125, 0.125, 0.25)
    """
    base = score(analysis, passed, total)
    if total <= 0 or base.stopped_at is not None:
        return base
    fraction = passed / total
    components = dict(base.components)
    for name in ("coop_calls_aux", "coop_not_wrapper", "coop_ignored_result"):
        components[name] = components[name] * fraction
    reward = round(sum(components.values()), 12)
    return Score(reward=reward, components=components, stopped_at=None)
