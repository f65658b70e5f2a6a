"""Mutation testing of the engine's GEN/AGG/incremental modules and the transferability estimators.

A mutant is the library with one small change (a `<` for a `<=`, a constant off by one, an
argument dropped); a test file that still passes on it lets that change through. The script
copies workflow/imprint and tests/ into a temporary folder (the repository never gets a
mutants/ folder, a session database or a cache), runs mutmut there over each module with that
module's fast test files, and prints every surviving mutant as file:line with the original and
the mutated code, then killed / survived / timeout / not-run counts and the wall time per module.

    python benchmarks/mutation.py                               # DEFAULT_TESTS' modules, 40 min
    python benchmarks/mutation.py --modules engine/incremental.py --max-minutes 10
    python benchmarks/mutation.py --functions engine/generate.py=kmeans_fits,farthest_point_sampling
    python benchmarks/mutation.py --tests engine/aggregate.py=tests/engine/test_components.py
    python benchmarks/mutation.py --out /tmp/mutation.md --keep  # a report; keep the work folder
    python benchmarks/mutation.py --dry-run                     # the plan only (no tool needed)
    python benchmarks/mutation.py --tool cosmic-ray --modules engine/aggregate.py --max-minutes 5

Needs mutmut 3 in the environment (`pip install "mutmut>=3.8"`; not a project dependency);
`--tool cosmic-ray` (`pip install cosmic-ray`) reruns the tool comparison recorded in
benchmarks/RESULTS.md: cosmic-ray starts a fresh pytest per mutant and runs every test file
each time, mutmut forks a warmed-up pytest and runs only the tests that reach the mutated
function, which is far faster. The time budget is shared out across the modules (time a
module leaves unused passes to the next); a module cut short reports its unrun mutants as
"not run" (mutmut runs the mutants with the fastest tests first, so a cut run is not a random
sample). Survivors on lines the tests never execute are marked "(line not run)": a test that
reaches the line is missing, not just a sharper assertion. Exit 0 after a run, whatever
survived; 2 when the tool is missing or an argument is wrong; 1 when the tool itself failed.

Torch's OpenMP thread pool does not survive mutmut's fork (a forked mutant hangs until its
time limit and is reported as a timeout), so mutants run with one thread each, one per core.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workflow" / "imprint"

# Module (relative to workflow/imprint) -> fast test files that exercise it, in the order the
# modules are run (and share the time budget). Chosen by line coverage: test_incremental.py
# covers 97% of incremental.py, test_components.py 97% of generate.py and (with
# test_distances.py) 75% of aggregate.py; each transferability estimator module 98-100% by the
# test file of its family, agreement.py 99% by test_agreement.py and (with_ncti)
# test_transferability_ncti.py.
DEFAULT_TESTS = {
    "engine/incremental.py": [
        "tests/engine/test_incremental.py",
        "tests/engine/test_incremental_gaps.py",
    ],
    "analysis/transferability/linear.py": [
        "tests/analysis/test_transferability_linear.py",
        "tests/analysis/test_transferability_gaps.py",
    ],
    "analysis/transferability/neighbours.py": [
        "tests/analysis/test_transferability_neighbours.py",
        "tests/analysis/test_transferability_gaps.py",
    ],
    "analysis/transferability/ncti.py": [
        "tests/analysis/test_transferability_ncti.py",
        "tests/analysis/test_transferability_gaps.py",
    ],
    "analysis/transferability/collapse_measures.py": [
        "tests/analysis/test_transferability_collapse.py",
        "tests/analysis/test_transferability_table.py",
        "tests/analysis/test_transferability_gaps.py",
    ],
    "analysis/agreement.py": [
        "tests/analysis/test_agreement.py",
        "tests/analysis/test_agreement_gaps.py",
        "tests/analysis/test_transferability_ncti.py",
    ],
    "engine/aggregate.py": [
        "tests/engine/test_components.py",
        "tests/engine/test_distances.py",
        "tests/engine/test_aggregate_gaps.py",
    ],
    "engine/generate.py": [
        "tests/engine/test_components.py",
        "tests/engine/test_gen_table.py",
        "tests/engine/test_generate_gaps.py",
    ],
}
STATUSES = ["killed", "survived", "timeout", "no tests", "not run", "other"]
INSTALL = {"mutmut": 'pip install "mutmut>=3.8"', "cosmic-ray": "pip install cosmic-ray"}


def mutmut_status(code) -> str:
    """mutmut's exit code of a mutant's test run as one of STATUSES."""
    if code is None:
        return "not run"
    if code in (1, 3):  # a test failed; 3: pytest's internal error, a kill too
        return "killed"
    if code == 0:
        return "survived"
    if code in (5, 33):
        return "no tests"
    if code in (24, -24, 36, 152, 255):  # SIGXCPU and the time limits
        return "timeout"
    return "other"


@dataclass
class Survivor:
    path: str  # as in the repository: workflow/imprint/...
    line: int | None
    name: str  # the tool's id of the mutant
    removed: list[str]
    added: list[str]
    run: bool | None = None  # whether the tests execute the line (None: not measured)

    def one_line(self) -> str:
        before = " ⏎ ".join(s.strip() for s in self.removed) or "(nothing)"
        after = " ⏎ ".join(s.strip() for s in self.added) or "(removed)"
        where = f"{self.path}:{self.line}" if self.line else self.path
        note = "  (line not run)" if self.run is False else ""
        return f"{where}: {before}  →  {after}{note}  [{self.name}]"


@dataclass
class ModuleResult:
    module: str
    tests: list[str]
    functions: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[Survivor] = field(default_factory=list)
    seconds: float = 0.0
    cut: bool = False
    error: str | None = None


# ----------------------------------------------------------------------------- arguments


def normalise_module(text: str) -> str:
    """'engine/aggregate.py', 'workflow/imprint/engine/aggregate.py' or 'imprint.engine.aggregate'
    -> 'engine/aggregate.py' (a ValueError when no such file)."""
    text = text.strip()
    if not text.endswith(".py"):
        text = text.replace(".", "/") + ".py"
    for prefix in ("workflow/imprint/", "imprint/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if not (PACKAGE / text).is_file():
        raise ValueError(f"no module workflow/imprint/{text}")
    return text


def parse_mapping(items: list[str], what: str) -> dict[str, list[str]]:
    """['MODULE=A,B', ...] -> {module: [A, B]}."""
    out: dict[str, list[str]] = {}
    for item in items:
        module, sep, values = item.partition("=")
        if not sep or not values.strip():
            raise ValueError(f"--{what} takes MODULE=VALUE[,VALUE...], got {item!r}")
        out.setdefault(normalise_module(module), []).extend(
            v.strip() for v in values.split(",") if v.strip()
        )
    return out


def function_names(module: str) -> list[str]:
    """The module's top-level functions and methods (Class.method), as mutmut mutates them."""
    tree = ast.parse((PACKAGE / module).read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef):
            names += [
                f"{node.name}.{n.name}"
                for n in node.body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
    return names


def plan(args) -> list[tuple[str, list[str], list[str]]]:
    """[(module, test files, function patterns)], checked against the files there."""
    modules = [normalise_module(m) for m in args.modules]
    tests = {**DEFAULT_TESTS, **parse_mapping(args.tests, "tests")}
    functions = parse_mapping(args.functions, "functions")
    out = []
    for module in modules:
        files = tests.get(module)
        if not files:
            raise ValueError(f"no test files for {module}: give --tests {module}=tests/...py")
        for f in files:
            if not (ROOT / f).is_file():
                raise ValueError(f"no test file {f} (for {module})")
        patterns = functions.get(module, [])
        known = function_names(module)
        for p in patterns:
            if not fnmatch.filter(known, p):
                raise ValueError(f"no function of {module} matches {p!r}; it has {known}")
        out.append((module, files, patterns))
    for module in functions:
        if module not in modules:
            raise ValueError(f"--functions names {module}, which --modules leaves out")
    return out


# ----------------------------------------------------------------------------- work folder


def make_workdir(base: Path, markers: list[str]) -> None:
    """A copy of the package under src/ (mutmut puts mutants/src first on sys.path) and of
    tests/, without caches; pytest settings in setup.cfg (which mutmut copies into mutants/)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(PACKAGE, base / "src" / "imprint", ignore=ignore)
    shutil.copytree(ROOT / "tests", base / "tests", ignore=ignore)
    lines = ["[tool:pytest]", "markers ="] + [f"    {m}" for m in markers]
    (base / "setup.cfg").write_text("\n".join(lines) + "\n")


def project_markers() -> list[str]:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return settings.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("markers", [])


def one_thread_env(workdir: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = "1"
    if workdir is not None:  # the copy, ahead of the editable install's workflow/
        env["PYTHONPATH"] = os.pathsep.join([str(workdir / "src"), env.get("PYTHONPATH", "")])
    return env


def run_until(cmd: list[str], cwd: Path, env: dict, log: Path, deadline: float) -> tuple[int, bool]:
    """Run `cmd` with its output in `log`; at `deadline` interrupt it (SIGINT: the tools save
    what they finished), then end its process group. (exit code, whether it was cut)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        cut = False
        while proc.poll() is None:
            if time.monotonic() >= deadline and not cut:
                cut = True
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pass
                break
            time.sleep(0.5)
        if proc.poll() is None or cut:  # leftovers of this run only (its own session)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.wait(), cut


def tail(path: Path, n: int = 3000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text.replace("\r", "\n")[-n:]


# ----------------------------------------------------------------------------- lines and coverage


def locate(source_lines: list[str], diff: str) -> tuple[int | None, list[str], list[str]]:
    """The file line of a mutant's first changed line, from a unified diff whose hunks may be
    numbered within a function: the hunk's old lines (context and removed) are looked up as a
    block in the file. (line, removed lines, added lines)."""
    removed, added, old, first = [], [], [], None
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            if removed or added:
                break  # the first hunk is the mutation
            old = []
            continue
        if line.startswith("-"):
            first = len(old) if first is None else first
            removed.append(line[1:])
            old.append(line[1:])
        elif line.startswith("+"):
            first = len(old) if first is None else first
            added.append(line[1:])
        elif line.startswith(" ") or line == "":
            if removed or added:
                if line.startswith(" "):
                    old.append(line[1:])
                continue
            old.append(line[1:])
    if first is None:
        return None, removed, added
    # Compared without indentation: a method's diff comes dedented out of its class.
    block = [s.strip() for s in old]
    lines = [s.strip() for s in source_lines]
    for start in range(len(lines) - len(block) + 1):
        if lines[start : start + len(block)] == block:
            return start + 1 + first, removed, added
    return None, removed, added


def executed_lines(
    workdir: Path, module: str, tests: list[str], log: Path
) -> tuple[set[int], set[int]] | None:
    """The module's statements the test files execute and miss (coverage.py, unmutated copy)."""
    try:
        import coverage  # noqa: F401  (a dependency of mutmut)
    except ImportError:
        return None
    data, report = workdir / ".coverage", workdir / "coverage.json"
    target = workdir / "src" / "imprint" / module
    env = one_thread_env(workdir)
    run = [sys.executable, "-m", "coverage", "run", f"--data-file={data}", f"--include={target}"]
    run += ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests]
    code, _ = run_until(run, workdir, env, log, time.monotonic() + 600)
    if code != 0:
        return None
    subprocess.run(
        [sys.executable, "-m", "coverage", "json", f"--data-file={data}", "-o", str(report)],
        cwd=workdir, env=env, capture_output=True,
    )  # fmt: skip
    files = json.loads(report.read_text())["files"] if report.exists() else {}
    for name, info in files.items():
        if Path(name).name == Path(module).name:
            return set(info["executed_lines"]), set(info["missing_lines"])
    return None


def line_run(line: int, lines: tuple[set[int], set[int]]) -> bool:
    """Whether the statement holding `line` ran: coverage.py numbers a statement by its first
    line, so a continuation line belongs to the nearest statement that starts at or above it."""
    executed, missing = lines
    starts = [s for s in executed | missing if s <= line]
    return bool(starts) and max(starts) in executed


# ----------------------------------------------------------------------------- mutmut


DIFFS = """
import json, sys
from pathlib import Path
from mutmut.mutation.diff_apply import get_diff_for_mutant
path, names = sys.argv[1], sys.argv[2:]
print(json.dumps({n: get_diff_for_mutant(n, path=Path(path)) for n in names}))
"""


def mutant_diffs(workdir: Path, path: str, names: list[str]) -> dict[str, str]:
    """{mutant: unified diff of its function}: mutmut's own diff function in one process, or
    `mutmut show` per mutant where that function has moved (another mutmut version)."""
    if not names:
        return {}
    env = one_thread_env()
    done = subprocess.run(
        [sys.executable, "-c", DIFFS, path, *names],
        cwd=workdir, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    out = {}
    for name in names:
        shown = subprocess.run(
            [sys.executable, "-m", "mutmut", "show", name],
            cwd=workdir, env=env, capture_output=True, text=True,
        )  # fmt: skip
        out[name] = shown.stdout
    return out


def run_mutmut(module, tests, patterns, workdir: Path, deadline: float, args) -> ModuleResult:
    result = ModuleResult(module, tests, patterns)
    src = f"src/imprint/{module}"
    cfg = workdir / "setup.cfg"
    lines = ["", "[mutmut]", "source_paths=src/imprint", f"only_mutate={src}"]
    lines += ["pytest_add_cli_args_test_selection="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args=", "    -p", "    no:cacheprovider", "    -p", "    no:xdist"]
    cfg.write_text(cfg.read_text() + "\n".join(lines) + "\n")
    log = workdir / "mutmut.log"
    dotted = "imprint." + module[:-3].replace("/", ".")
    names = []
    for p in patterns:  # Class.method -> xǁClassǁmethod, function -> x_function
        cls, dot, fn = p.rpartition(".")
        names.append(f"{dotted}.xǁ{cls}ǁ{fn}__mutmut_*" if dot else f"{dotted}.x_{p}__mutmut_*")
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs), *names]
    code, result.cut = run_until(cmd, workdir, one_thread_env(), log, deadline)
    meta = workdir / "mutants" / f"{src}.meta"
    if not meta.exists():
        result.error = f"mutmut exited {code} without results:\n{tail(log)}"
        return result
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    if patterns:
        codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, n) for n in names)}
    if code not in (0, None) and not result.cut:
        result.error = f"mutmut exited {code}:\n{tail(log)}"
    result.counts = {s: 0 for s in STATUSES}
    for c in codes.values():
        result.counts[mutmut_status(c)] += 1
    survived = sorted((k for k, c in codes.items() if mutmut_status(c) == "survived"), key=natural)
    source = (PACKAGE / module).read_text().splitlines()
    for name, diff in mutant_diffs(workdir, src, survived).items():
        line, removed, added = locate(source, diff)
        result.survivors.append(Survivor(f"workflow/imprint/{module}", line, name, removed, added))
    result.survivors.sort(key=lambda s: (s.line or 0, natural(s.name)))
    return result


def natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# ----------------------------------------------------------------------------- cosmic-ray


def run_cosmic_ray(module, tests, patterns, workdir: Path, deadline: float, args) -> ModuleResult:
    """The same module and test files under cosmic-ray (local distributor: one mutant at a
    time, a fresh `pytest -x` over all the test files each)."""
    result = ModuleResult(module, tests, patterns)
    src = f"src/imprint/{module}"
    test_command = " ".join(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + tests
    )
    (workdir / "cr.toml").write_text(
        "[cosmic-ray]\n"
        f'module-path = "{src}"\n'
        "timeout = 300.0\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command)}\n"
        '\n[cosmic-ray.distributor]\nname = "local"\n'
    )
    env = one_thread_env(workdir)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.jobs)  # one mutant at a time
    log, db = workdir / "cosmic-ray.log", workdir / "session.sqlite"
    cr = [sys.executable, "-m", "cosmic_ray.cli"]
    code, _ = run_until([*cr, "init", "cr.toml", str(db)], workdir, env, log, deadline)
    if code != 0:
        result.error = f"cosmic-ray init exited {code}:\n{tail(log)}"
        return result
    code, result.cut = run_until([*cr, "exec", "cr.toml", str(db)], workdir, env, log, deadline)
    dump = subprocess.run([*cr, "dump", str(db)], cwd=workdir, env=env, capture_output=True)
    result.counts = {s: 0 for s in STATUSES}
    source = (PACKAGE / module).read_text().splitlines()
    for line in dump.stdout.decode().splitlines():
        item, outcome = json.loads(line)
        mutation = item["mutations"][0]
        if patterns and not any(
            fnmatch.fnmatch(mutation.get("definition_name") or "", p.rpartition(".")[2])
            for p in patterns
        ):
            continue
        if outcome is None:
            status = "not run"
        elif outcome["worker_outcome"] != "normal":
            status = "other"
        else:
            status = {"killed": "killed", "survived": "survived"}.get(
                outcome["test_outcome"], "other"
            )
            status = "timeout" if outcome.get("output") == "timeout" else status
        result.counts[status] += 1
        if status == "survived":
            at, removed, added = locate(source, outcome.get("diff") or "")
            name = f"{mutation['operator_name']}#{mutation['occurrence']}"
            result.survivors.append(
                Survivor(f"workflow/imprint/{module}", at, name, removed, added)
            )
    if code not in (0, None) and not result.cut:
        result.error = f"cosmic-ray exec exited {code}:\n{tail(log)}"
    result.survivors.sort(key=lambda s: (s.line or 0, natural(s.name)))
    return result


# ----------------------------------------------------------------------------- report


def summary_table(results: list[ModuleResult], tool: str) -> list[str]:
    head = ["module", "mutants", *STATUSES, "wall s", "mutants/s", "tests"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        done = sum(r.counts.get(s, 0) for s in STATUSES if s != "not run")
        rate = f"{done / r.seconds:.2f}" if r.seconds else "-"
        name = r.module + (f" ({', '.join(r.functions)})" if r.functions else "")
        name += " (cut at the time limit)" if r.cut else ""
        name += " (FAILED)" if r.error else ""
        cells = [name, str(sum(r.counts.values())), *(str(r.counts.get(s, 0)) for s in STATUSES)]
        cells += [f"{r.seconds:.0f}", rate, ", ".join(Path(t).name for t in r.tests)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def report(results: list[ModuleResult], tool: str, command: str, total: float) -> str:
    lines = [f"# Mutation testing ({tool})", "", f"Command: `{command}`", ""]
    lines += summary_table(results, tool) + ["", f"Total wall time: {total:.0f} s", ""]
    for r in results:
        lines += [f"## {r.module}: {len(r.survivors)} survived", ""]
        if r.error:
            lines += ["```", r.error.strip(), "```", ""]
        for s in r.survivors:
            lines.append(
                f"- `{s.path}:{s.line}` `{s.name}`" + (" (line not run)" if s.run is False else "")
            )
            lines += [f"  - `- {x.strip()}`" for x in s.removed]
            lines += [f"  - `+ {x.strip()}`" for x in s.added]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--modules", nargs="+", default=list(DEFAULT_TESTS), metavar="MODULE",
        help="modules under workflow/imprint, run in this order (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--tests", action="append", default=[], metavar="MODULE=FILE[,FILE]",
        help="a module's test files (repeatable; replaces that module's default: "
        + "; ".join(f"{m}={','.join(t)}" for m, t in DEFAULT_TESTS.items()) + ")",
    )  # fmt: skip
    p.add_argument(
        "--functions", action="append", default=[], metavar="MODULE=PATTERN[,PATTERN]",
        help="mutate only these functions of a module (glob patterns; Class.method for methods)",
    )  # fmt: skip
    p.add_argument("--max-minutes", type=float, default=40.0, help="time budget for all modules")
    p.add_argument("--out", type=Path, help="also write the report (markdown) to this file")
    p.add_argument("--tool", choices=["mutmut", "cosmic-ray"], default="mutmut")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants at once (mutmut)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (mutmut show, browse)")
    p.add_argument("--no-coverage", action="store_true", help="skip the (line not run) pass")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = p.parse_args(argv)
    try:
        todo = plan(args)
    except ValueError as err:
        p.error(str(err))
    budget = args.max_minutes * 60
    print(f"{args.tool} over {len(todo)} module(s), {args.max_minutes:g} min in all:")
    for module, tests, patterns in todo:
        only = f" (functions {', '.join(patterns)})" if patterns else ""
        print(f"  workflow/imprint/{module}{only}: {' '.join(tests)}")
    if args.dry_run:
        return 0
    distribution = "mutmut" if args.tool == "mutmut" else "cosmic_ray"
    try:
        version = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        print(
            f"{args.tool} is not installed in this environment ({sys.executable}); install it "
            f"with:\n    {sys.executable} -m {INSTALL[args.tool]}",
            file=sys.stderr,
        )
        return 2
    if args.tool == "mutmut" and int(version.split(".")[0]) < 3:
        print(
            f"mutmut {version} found; this script needs mutmut 3: {INSTALL['mutmut']}",
            file=sys.stderr,
        )
        return 2
    print(f"{args.tool} {version}, {args.jobs} job(s)")
    run_module = run_mutmut if args.tool == "mutmut" else run_cosmic_ray
    markers = project_markers()
    start = time.monotonic()
    deadline_all = start + budget
    results = []
    for i, (module, tests, patterns) in enumerate(todo):
        began = time.monotonic()
        share = (deadline_all - began) / (len(todo) - i)
        workdir = Path(tempfile.mkdtemp(prefix=f"imprint-mutation-{Path(module).stem}-"))
        try:
            make_workdir(workdir, markers)
            lines = None
            if not args.no_coverage:
                lines = executed_lines(workdir, module, tests, workdir / "coverage.log")
            print(
                f"{module}: {args.tool} running (until {share / 60:.1f} min from now) ...",
                flush=True,
            )
            result = run_module(module, tests, patterns, workdir, began + share, args)
            for s in result.survivors:
                s.run = None if lines is None or s.line is None else line_run(s.line, lines)
        finally:
            if args.keep:
                print(f"  work folder kept: {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        result.seconds = time.monotonic() - began
        results.append(result)
        counts = ", ".join(f"{result.counts.get(s, 0)} {s}" for s in STATUSES)
        print(f"{module}: {counts} in {result.seconds:.0f} s" + (" (cut)" if result.cut else ""))
        if result.error:
            print(result.error, file=sys.stderr)
        for s in result.survivors:
            print("  " + s.one_line())
    total = time.monotonic() - start
    print()
    print("\n".join(summary_table(results, args.tool)))
    print(f"total wall time {total:.0f} s")
    if args.out:
        command = "python benchmarks/mutation.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report(results, args.tool, command.strip(), total))
        print(f"report: {args.out}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
