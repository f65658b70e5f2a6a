"""The front door and the rooms behind it: README.md stays a short user's guide (no dates, no
history; its commands work in a fresh shell and match CI's), and the docs site builds with
`mkdocs build --strict` — offline, a broken link or anchor failing it — with a configuration
reference that lists every key of the config schema with its type, default, allowed values and
description."""

import html
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from _snakemake import REPO

README = REPO / "README.md"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CI = REPO / ".ci" / "run"
MAX_README_LINES = 250

MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
DATE = re.compile(
    rf"\b20\d\d-\d\d-\d\d\b"  # 2026-12-07
    rf"|\b(?:{MONTHS})\.?\s+(?:\d{{1,2}}(?:st|nd|rd|th)?,?\s+)?20\d\d\b"  # December 7, 2026
    rf"|\b\d{{1,2}}\s+(?:{MONTHS})\.?,?\s+20\d\d\b",  # 7 December 2026
    re.IGNORECASE,
)
# History has no place on the front page (the issue: no "morning / earlier / before"); dated
# measurements go to benchmarks/RESULTS.md.
HISTORY = re.compile(
    r"\b(?:morning|afternoon|earlier|before|today|yesterday|this session|no longer)\b"
    r"|\d\s*(?:s|ms|min|GiB|GB|MB|%)?\s*(?:→|->)\s*\d",  # a measured change: 571 s → 258 s
    re.IGNORECASE,
)


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move depth to docs/"
    )


@pytest.mark.parametrize("pattern", [DATE, HISTORY], ids=["dates", "history"])
def test_readme_has_no_dates_or_history(pattern):
    found = [
        f"line {n}: {m.group(0)!r} in {line.strip()!r}"
        for n, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
        for m in pattern.finditer(line)
    ]
    assert not found, (
        "README.md describes the software as it is; dated measurements go to "
        "benchmarks/RESULTS.md:\n" + "\n".join(found)
    )


def test_docs_pages_carry_no_dates():
    found = [
        f"{page.name}: {m.group(0)!r}"
        for page in sorted((REPO / "docs").glob("*.md"))
        for m in DATE.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not found, "dated measurements go to benchmarks/RESULTS.md:\n" + "\n".join(found)


def code_lines(text: str) -> list[str]:
    """The lines of the fenced code blocks, in order."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


def test_readme_commands_run_in_a_fresh_shell():
    # The environment is activated ahead of the first bare command; nothing runs from a PATH the
    # set-up did not make.
    lines = code_lines(README.read_text(encoding="utf-8"))
    bare = re.compile(r"^(?:snakemake|imprint|pip|python|pytest|mkdocs|ruff|snakefmt)\b")
    activate = next(
        (i for i, line in enumerate(lines) if "source .venv/bin/activate" in line), None
    )
    first = next((i for i, line in enumerate(lines) if bare.match(line)), None)
    assert first is None or (activate is not None and activate < first), (
        f"README runs {lines[first]!r} ahead of `source .venv/bin/activate`"
    )


def pytest_arguments(line: str) -> list[str]:
    words = shlex.split(line, comments=True)
    return words[words.index("pytest") + 1 :]


def test_ci_runs_the_readme_test_command():
    readme = [line for line in code_lines(README.read_text()) if "-m pytest" in line]
    ci = [
        line
        for line in CI.read_text().splitlines()
        if "-m pytest" in line and not line.lstrip().startswith("#")
    ]
    assert readme and ci, "README and .ci/run each give the test command"
    assert pytest_arguments(readme[0]) == pytest_arguments(ci[-1]), (
        f"README's test command {readme[0]!r} and .ci/run's {ci[-1]!r} differ"
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built as CI builds it: strict, into a folder outside the repository, with
    every proxy pointing at a closed port so that a build needing the network fails."""
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy",)}
    closed = "http://127.0.0.1:9"
    env |= {k: closed for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy")}
    env |= {"https_proxy": closed, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}"
    return out


def test_docs_build_strict_and_offline(site):
    pages = {p.parent.name for p in site.glob("*/index.html")}
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = re.findall(r"([\w-]+)\.md", json.dumps(nav))
    assert set(listed) - {"index"} <= pages
    assert not list(site.rglob("hooks.py")), "the build hook is not published"


def resolved(node: dict, schema: dict) -> dict:
    if "$ref" not in node:
        return node
    target = schema
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def schema_keys(node: dict, schema: dict, path: str = ""):
    """(dotted path, schema) of every key the schema defines; a name the user chooses (a map's
    keys, additionalProperties) is the segment <name>."""
    node = resolved(node, schema)
    for name, child in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        yield key, resolved(child, schema)
        yield from schema_keys(child, schema, key)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        yield from schema_keys(extra, schema, f"{path}.<name>")


def enum_values(node: dict) -> list:
    values = list(node.get("enum", []))
    for child in [node.get("items"), *node.get("oneOf", []), *node.get("anyOf", [])]:
        if isinstance(child, dict):
            values += enum_values(child)
    return values


def plain(fragment: str) -> str:
    """A rendered HTML fragment as plain text with single spaces."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_config_reference_lists_every_schema_key(site):
    schema = yaml.safe_load(SCHEMA.read_text())
    keys = dict(schema_keys(schema, schema))
    assert len(keys) > 40  # the walk reached the nested sections
    page = (site / "config-reference" / "index.html").read_text(encoding="utf-8")
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if cells:
            rows[plain(cells[0])] = [plain(c) for c in cells]
    missing = sorted(set(keys) - set(rows))
    assert not missing, f"keys of the schema missing from the reference page: {missing}"
    for key, node in keys.items():
        _, kind, default, allowed, description = rows[key]
        assert kind, key
        if "default" in node:
            value = node["default"]
            shown = value if isinstance(value, str) else json.dumps(value)
            assert default == shown, f"{key}: default {default!r}, schema says {value!r}"
        for value in enum_values(node):
            assert str(value) in allowed, f"{key}: allowed values lack {value!r}"
        if "description" in node:
            assert " ".join(node["description"].replace("`", "").split()) in description, key
