"""MkDocs hook: one page per registered env id, generated from the env module's docstring.

The pages are built in memory at every `mkdocs build`, so they cannot drift from the code.
"""

from __future__ import annotations

import importlib
import json
import re

from mkdocs.structure.files import File

# A Sphinx cross-reference role in a docstring: :class:`Name`, :func:`~pkg.mod.name`,
# :meth:`shown text <pkg.mod.Class.method>`. Markdown would show the role literally.
_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|exc|data|obj):`(?P<target>[^`]+)`")
# A two-column table whose header row is empty (the docstrings' key/value tables).
_EMPTY_HEADER = re.compile(r"^\|[ \t]*\|[ \t]*\|[ \t]*\n(?=\|[-: \t]+\|[-: \t]+\|[ \t]*$)", re.M)


def _role_text(match: re.Match) -> str:
    target = match.group("target").strip()
    shown, bracket, _ = target.partition(" <")
    if bracket:  # explicit title: :meth:`title <target>`
        return f"`{shown.strip()}`"
    if target.startswith("~"):  # ~pkg.mod.Name shows only Name
        return f"`{target[1:].rpartition('.')[2]}`"
    return f"`{target}`"


def plain_markdown(text: str) -> str:
    """Docstring text as Markdown: Sphinx roles become code spans, empty table headers get
    column names (a Markdown table needs a header row)."""
    text = _ROLE.sub(_role_text, text)
    return _EMPTY_HEADER.sub("| Property | Value |\n", text)


# The same roles once rendered to HTML (the API reference's docstrings, through mkdocstrings).
_HTML_ROLE = re.compile(
    r":(?:py:)?(?:mod|class|func|meth|attr|exc|data|obj):<code>(?P<target>[^<]+)</code>"
)


def _html_role_text(match: re.Match) -> str:
    target = match.group("target").strip()
    shown, bracket, _ = target.partition(" &lt;")
    if bracket:
        return f"<code>{shown.strip()}</code>"
    if target.startswith("~"):
        return f"<code>{target[1:].rpartition('.')[2]}</code>"
    return f"<code>{target}</code>"


def on_page_content(html: str, page, config, files) -> str:
    return _HTML_ROLE.sub(_html_role_text, html)


def _env_page(env_id: str, spec) -> str:
    module = importlib.import_module(spec.entry_point.partition(":")[0])
    doc = (module.__doc__ or "").strip()
    title, _, body = plain_markdown(doc).partition("\n")
    kwargs = json.dumps(dict(spec.kwargs), indent=2, sort_keys=True)
    return (
        f"# {env_id}\n\n"
        f"*{spec.description}*\n\n"
        f"```python\nimport mallm_envs\n\nenv = mallm_envs.make({env_id!r})\n```\n\n"
        f"Agents: {', '.join(f'`{a}`' for a in spec.agents)} · family `{spec.family}` · "
        f"scripted agent: {'yes' if spec.scripted_agent else 'no'}\n\n"
        f"Registered arguments:\n\n```json\n{kwargs}\n```\n\n"
        f"## {title.strip()}\n\n{body.strip()}\n"
    )


def _index(registry) -> str:
    rows = ["| id | agents | family | description |", "|---|---|---|---|"]
    for env_id, spec in registry.items():
        agents = ", ".join(spec.agents)
        rows.append(f"| [{env_id}]({env_id}.md) | {agents} | {spec.family} | {spec.description} |")
    return (
        "# Environments\n\n"
        "Every id below passes PettingZoo's `api_test`, `parallel_api_test` and `seed_test` and "
        "this project's contract (`mallm_envs.testing.check_env`). Each page is generated from "
        "the environment module's docstring.\n\n" + "\n".join(rows) + "\n"
    )


def on_files(files, config):
    import mallm_envs

    registry = mallm_envs.registry
    files.append(File.generated(config, "environments/index.md", content=_index(registry)))
    for env_id, spec in registry.items():
        files.append(
            File.generated(config, f"environments/{env_id}.md", content=_env_page(env_id, spec))
        )
    return files
