"""mkdocs hook: the configuration reference page, generated from the config schema at each build.

The page `config-reference.md` exists only in the built site: it is written from
workflow/schemas/config.schema.yaml every time mkdocs builds or serves, so it lists exactly the
keys the workflow validates against (type, default, allowed values, description). Edit the
schema, never the page. tests/test_docs.py checks that every key of the schema is on it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

PAGE = "config-reference.md"
SCHEMA = Path("workflow/schemas/config.schema.yaml")
NAME = "<name>"  # a path segment the user chooses (a dataset's, backbone's, experiment's name)


def on_files(files, config):
    """mkdocs event: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    schema_path = Path(config.config_file_path).parent / SCHEMA
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    files.append(File.generated(config, PAGE, content=render(schema)))
    return files


def resolve(node: dict, schema: dict) -> dict:
    """`node` with a local `$ref` replaced by its target (the node's own keys win)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}


def keys(node: dict, schema: dict, path: str = ""):
    """Every key below `node`: (dotted path, its schema, whether required), depth first.

    Named entries (a map whose keys the user chooses: datasets, backbones, experiments, …) get
    the segment `<name>`; alternatives under oneOf/anyOf describe values, not keys.
    """
    node = resolve(node, schema)
    required = set(node.get("required", ()))
    for name, child in node.get("properties", {}).items():
        child_path = f"{path}.{name}" if path else name
        yield child_path, resolve(child, schema), name in required
        yield from keys(child, schema, child_path)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        child_path = f"{path}.{NAME}" if path else NAME
        yield child_path, resolve(extra, schema), False
        yield from keys(extra, schema, child_path)


def type_of(node: dict) -> str:
    """The value's type in words: `array of string`, `integer or null`, …"""
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        words = []
        for t in types:
            if t == "array" and isinstance(node.get("items"), dict):
                words.append(f"array of {type_of(node['items'])}")
            else:
                words.append(t)
        return " or ".join(words)
    for combiner in ("oneOf", "anyOf"):
        if combiner in node:
            words = dict.fromkeys(type_of(alt) for alt in node[combiner])
            words.pop("any", None)
            return " or ".join(words) or "any"
    if "const" in node:
        return type(node["const"]).__name__.replace("int", "integer")
    return "any"


def literal(value) -> str:
    """A value as it is written in a YAML config."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def allowed(node: dict, named_rows: bool = False) -> str:
    """The values the schema accepts, in words (enumerations, bounds, sizes). named_rows: the
    node's named entries have rows of their own (keys() walks them), so they are not described
    here."""
    words = []
    if "enum" in node:
        words.append("one of " + ", ".join(f"`{literal(v)}`" for v in node["enum"]))
    if "const" in node:
        words.append(f"`{literal(node['const'])}`")
    for key, sign in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            words.append(f"{sign} {literal(node[key])}")
    if "minLength" in node:
        words.append("not empty")
    if "minItems" in node:
        words.append(f"at least {node['minItems']} item{'s' * (node['minItems'] > 1)}")
    if node.get("uniqueItems"):
        words.append("no item twice")
    if "minProperties" in node:
        words.append(
            f"at least {node['minProperties']} entr{'ies' if node['minProperties'] > 1 else 'y'}"
        )
    items = node.get("items")
    if isinstance(items, dict) and (inner := allowed(items)):
        words.append(f"each item {inner}")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and not named_rows and (inner := allowed(extra)):
        words.append(f"each value {inner}")
    for combiner in ("oneOf", "anyOf"):
        if combiner in node:
            words.append("; or ".join(alternative(alt) for alt in node[combiner]))
    return "; ".join(words)


def alternative(node: dict) -> str:
    """One branch of a oneOf/anyOf: its type, with what it allows."""
    kind, values = type_of(node), allowed(node)
    if "const" in node or kind == "any":
        return values or kind
    return f"{kind} ({values})" if values else kind


def text(value: str) -> str:
    """Schema prose as table-cell Markdown: one line, Markdown's special characters escaped
    outside `code spans`, so names like nc1_reference_centring print as written."""
    parts = str(value).split("`")
    for i in range(0, len(parts), 2):  # outside the code spans
        escaped = re.sub(r"([\\*_\[\]|])", r"\\\1", parts[i])
        parts[i] = escaped.replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("\n", " ").strip()


def row(path: str, node: dict, required: bool) -> str:
    if "default" in node:
        default = f"`{literal(node['default'])}`"
    else:
        default = "**required**" if required else "unset"
    cells = [
        f"`{path}`",
        text(type_of(node)),
        default,
        allowed(node, named_rows=True).replace("|", "\\|") or "—",
        text(node.get("description", "")) or placeholder(path),
    ]
    return "| " + " | ".join(cells) + " |"


def placeholder(path: str) -> str:
    """The description of a key the schema leaves undescribed."""
    parent, _, last = path.rpartition(".")
    if last == NAME:
        return f"One entry of `{parent}`, under a name you choose."
    return "—"


def render(schema: dict) -> str:
    """The reference page: one section per top-level key, a table row per key below it."""
    lines = [
        "# Configuration reference",
        "",
        "*Generated from `workflow/schemas/config.schema.yaml` each time this site is built;"
        " edit the schema, not this page.*",
        "",
        text(schema.get("description", "")),
        "",
        "Required at the top level: "
        + ", ".join(f"[`{k}`](#{k})" for k in schema.get("required", ()))
        + ". A key shown as `<name>` is a name you choose (a dataset's, a backbone's, an "
        "experiment's, …). Planning (`snakemake -n`) and `imprint check-config FILE` check a "
        "config against this schema and name the key that is wrong; "
        "[Configuration](configuration.md) explains how the sections work together.",
        "",
    ]
    top_required = set(schema.get("required", ()))
    for name, child in schema.get("properties", {}).items():
        child = resolve(child, schema)
        lines += [
            f"## {name}",
            "",
            "| key | type | default | allowed values | description |",
            "|---|---|---|---|---|",
            row(name, child, name in top_required),
        ]
        lines += [row(p, n, r) for p, n, r in keys(child, schema, name)]
        lines.append("")
    return "\n".join(lines)
