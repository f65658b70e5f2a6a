"""The library's layout stays readable: short modules and functions, import-free packages."""

import ast

from _snakemake import REPO

LIBRARY = REPO / "workflow" / "imprint"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
STAGES = {"data", "engine", "analysis", "figures", "planning", "api", "cli"}
# What each part may not import, even lazily inside a function: the arrows run one way,
# from the command line down to the engine (docs/architecture.md draws them).
BASE = {"arguments", "io", "outputs"}  # the modules at the top of imprint/
FORBIDDEN = {
    "base": {"analysis", "figures", "planning", "api", "cli"},
    "data": {"analysis", "figures", "planning", "api", "cli"},
    "engine": {"analysis", "figures", "planning", "api", "cli"},
    "planning": {"analysis", "figures", "api", "cli"},
    "analysis": {"figures", "planning", "api", "cli"},
    "figures": {"api", "cli"},
    "api": {"cli"},
    "cli": set(),
}


def modules():
    return sorted(LIBRARY.rglob("*.py"))


def test_the_library_is_grouped_by_pipeline_stage():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists()}
    assert packages == STAGES
    top = {p.name for p in LIBRARY.glob("*.py")}
    # arguments.py: the numbers users give, checked by flag; io.py: what is read and kept;
    # outputs.py: where a command may write. Everything else lives in a stage's package.
    assert top == {"__init__.py", *(f"{name}.py" for name in BASE)}


def _part(module: str) -> str | None:
    """The part (a stage package, or "base") an imprint module belongs to."""
    parts = module.split(".")
    if parts[0] != "imprint" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in STAGES else "base"


def test_imports_run_one_way():
    wrong = []
    for path in modules():
        rel = path.relative_to(LIBRARY.parent).with_suffix("")
        here = _part(".".join(rel.parts))
        if here is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if _part(target) in FORBIDDEN[here]:
                    wrong.append(f"{path.relative_to(REPO)}:{node.lineno} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_package_inits_import_nothing():
    # Importing imprint.planning must not pull in the engine (torch) through an __init__.
    # imprint/__init__.py may import os (loaded by Python's start-up anyway) to set torch's
    # huge-page switch before torch reads it.
    for init in LIBRARY.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        imports = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Import | ast.ImportFrom)
            and not (init == LIBRARY / "__init__.py" and ast.unparse(n) == "import os")
        ]
        assert not imports, f"{init.relative_to(REPO)} imports {ast.unparse(imports[0])}"


def test_no_module_over_500_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"
