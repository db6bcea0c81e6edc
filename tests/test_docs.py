"""The documentation is true: generated references are up to date, every YAML policy example
loads, every `gatehouse ...` command (and its options) named in README.md and docs/ exists, and
the error codes the routes list are the codes the source raises, with their statuses."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import pytest
import yaml

from gatehouse.api.app import create_app
from gatehouse.api.error_codes import Scan, catalogue, documented_codes, scan
from gatehouse.api.openapi import NOT_PER_ROUTE
from gatehouse.cli import main
from gatehouse.config import Settings
from gatehouse.policy import load

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Top-level keys that make a YAML block a policy bundle rather than a fragment of one.
_BUNDLE_KEYS = {"version", "rules", "output_rules", "default_decision", "require", "sets", "adapters"}
_FENCE = re.compile(r"```(\w*)[^\n]*\n(.*?)```", re.S)
_COMMAND = re.compile(r"(?<![\w/.\-\[])gatehouse((?: +[^\s`|;&)>]+)+)")


def test_the_generated_references_are_up_to_date() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _policy_examples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for m in _FENCE.finditer(page.read_text()):
            if m.group(1) not in ("yaml", "yml"):
                continue
            data = yaml.safe_load(m.group(2))
            if isinstance(data, dict) and _BUNDLE_KEYS & set(data):
                line = page.read_text()[: m.start()].count("\n") + 1
                found.append((f"{page.name}:{line}", m.group(2)))
    return found


def test_there_are_policy_examples() -> None:
    assert len(_policy_examples()) >= 12


@pytest.mark.parametrize(("where", "text"), _policy_examples(), ids=lambda v: v if ":" in str(v) else "")
def test_every_policy_example_loads(where: str, text: str) -> None:
    load(text)  # raises PolicyError with the line on anything wrong


def _code(text: str) -> list[str]:
    """The code in a page: fenced blocks (not YAML) and inline spans."""
    spans = [m.group(2) for m in _FENCE.finditer(text) if m.group(1) not in ("yaml", "yml", "json")]
    rest = _FENCE.sub("", text)
    spans += re.findall(r"`([^`\n]+)`", rest)
    return spans


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for span in _code(page.read_text()):
            for line in span.replace("\\\n", " ").splitlines():
                for m in _COMMAND.finditer(line):
                    found.append((page.name, "gatehouse" + m.group(1)))
    return found


def _check(command: str) -> str | None:
    """None when `command` names an existing command and only its options; else what is wrong."""
    try:
        words = shlex.split(command, comments=True)[1:]
    except ValueError:
        words = command.split()[1:]
    cmd: click.Command = main
    ctx = click.Context(main, info_name="gatehouse")
    path = ["gatehouse"]
    while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
        sub = cmd.get_command(ctx, words[0])
        if sub is None:
            if words[0] in ("...", "COMMAND", "<group>", "X", "Y") or words[0].isupper():
                return None  # a placeholder in prose
            return f"`{' '.join(path)}` has no command `{words[0]}`"
        cmd, path, words = sub, [*path, words[0]], words[1:]
        ctx = click.Context(cmd, info_name=(words and path[-1]) or path[-1], parent=ctx)
    options = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name = word.split("=", 1)[0]
            if name not in options and name != "--help":
                return f"`{' '.join(path)}` has no option `{name}`"
    return None


def test_docs_name_commands() -> None:
    assert len(_command_lines()) >= 50


def test_every_command_named_in_the_docs_exists() -> None:
    problems = sorted({f"{page}: {cmd!r}: {why}" for page, cmd in _command_lines() if (why := _check(cmd))})
    assert problems == []


def test_the_checker_catches_a_wrong_command() -> None:
    assert _check("gatehouse approvals list --json") is None
    assert _check("gatehouse aproovals list") is not None
    assert _check("gatehouse jobs list --colour") is not None


def test_the_readme_links_to_the_docs_and_nothing_outside_the_repository() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/README.md" in readme
    for page in PAGES:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page.name
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), (page.name, target)


# ---- error codes: the code is the source of truth, the per-route tables are checked against it


@pytest.fixture(scope="module")
def codes() -> tuple[Scan, dict[str, dict[str, set[int]]]]:
    app = create_app(Settings(data_dir=Path(tempfile.mkdtemp()), metrics_port=None))
    return scan(), documented_codes(app.openapi())


def test_every_error_code_raised_over_http_is_listed_for_a_route_or_said_why_not(codes) -> None:
    found, documented = codes
    assert found.unknown_raisers == []  # a helper that takes `code=` must be named in `_HELPERS`
    missing = sorted(
        f"{c} ({', '.join(sorted(i.modules))})"
        for c, i in found.codes.items()
        if i.status is not None and c not in documented and c not in NOT_PER_ROUTE
    )
    assert missing == [], "add these codes to their routes in gatehouse/api/openapi.py ERRORS"


def test_every_documented_error_code_is_raised_somewhere(codes) -> None:
    found, documented = codes
    stale = sorted(c for c in [*documented, *NOT_PER_ROUTE] if not found.knows(c))
    assert stale == [], "documented codes that nothing raises any more"
    assert not set(NOT_PER_ROUTE) & set(documented), "a code is either in a route's table or not"


def test_a_documented_status_is_the_status_of_the_class_that_raises_the_code(codes) -> None:
    found, documented = codes
    wrong = sorted(
        f"{route}: {c} listed under {sorted(statuses)}, raised as {sorted(found.codes[c].statuses)}"
        for c, routes in documented.items()
        if c in found.codes and found.codes[c].statuses
        for route, statuses in routes.items()
        if not statuses <= found.codes[c].statuses
    )
    assert wrong == []


def test_the_scan_finds_a_code_added_in_code(tmp_path: Path) -> None:
    pkg = tmp_path / "gatehouse"
    (pkg / "control").mkdir(parents=True)
    (pkg / "control" / "new.py").write_text(
        "from gatehouse.errors import Conflict, NotFound\n"
        "WHY = 'widget_busy'\n"
        "def f(x):\n"
        "    if x:\n"
        "        raise NotFound('no widget', code='widget_not_found')\n"
        "    raise Conflict('busy', code=WHY)\n"
        "def g(x):\n"
        "    raise NotFound(f'no {x}')\n"
        "def h(make):\n"
        "    make(code='hidden_code')\n"
    )
    found = scan(pkg)
    assert (found.codes["widget_not_found"].statuses, found.codes["widget_busy"].statuses) == ({404}, {409})
    assert found.codes["not_found"].modules == {"gatehouse.control.new", "gatehouse.api.errors"}
    assert found.unknown_raisers == ["gatehouse.control.new:10: make(code=...)"]
    rows = catalogue(found, {"widget_not_found": {"GET /w": {404}}}, {})
    assert ("widget_not_found", "404", "control.new", "`GET /w`") in rows
    assert (
        "widget_busy",
        "409",
        "control.new",
        "",
    ) in rows  # not yet listed for a route: the test above fails
