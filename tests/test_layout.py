"""The library's layout stays readable: short modules and functions, import-free packages."""

import ast

from _snakemake import REPO

LIBRARY = REPO / "workflow" / "imprint"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
STAGES = {"data", "engine", "analysis", "figures", "planning"}


def modules():
    return sorted(LIBRARY.rglob("*.py"))


def test_the_library_is_grouped_by_pipeline_stage():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists()}
    assert packages == STAGES
    top = {p.name for p in LIBRARY.glob("*.py")}
    # api.py: the paper's pipeline on files; model_choice.py: the questions beyond it (baselines,
    # transferability, similarity) on files; io.py: what is read and kept; outputs.py: where a
    # command may write; arguments.py: the numbers users give, checked by flag.
    assert top == {
        "__init__.py",
        "api.py",
        "arguments.py",
        "cli.py",
        "io.py",
        "model_choice.py",
        "outputs.py",
    }


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


def test_no_module_over_600_lines():
    long = {
        str(p.relative_to(REPO)): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_80_lines_without_a_reason():
    # A longer function must say why in a comment on the line above its `def`.
    long = []
    for path in modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            above = lines[first - 2].strip() if first >= 2 else ""
            if length > MAX_FUNCTION_LINES and not above.startswith("# long:"):
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length})")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without a reason: {long}"
