"""Fingerprints of every result the workflow writes, to show that a change kept behaviour.

Runs the quickstart (config.yaml) and each .test/ config from empty in a scratch directory
(with the input trees their tests make), records the jobs `snakemake -n` plans and a SHA-256
of every table, JSON and array under results/ (tables by their rows without the columns that
time the work, `*_seconds`; parquet's writer metadata does not count; figures and logs are left
out), and writes them as JSON. Compare two:

    python tests/results_snapshot.py before.json            # on the old commit
    python tests/results_snapshot.py after.json             # on the new one
    python tests/results_snapshot.py --compare before.json after.json

The second form exits 1 and names every file whose content or presence differs.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _snakemake import REPO, install_config, job_counts, snakemake  # noqa: E402
from _trees import digit_image_folder, digits_npz, imagenet_tree, tiny_vit  # noqa: E402

CONFIGS = ("quickstart", "tiny", "small", "own_embeddings", "joined", "by_name")
KEPT = {".csv", ".json", ".npy", ".parquet", ".tex", ".txt"}
# Keys whose values say when or where a file was written, not what it holds.
VOLATILE = {"created", "imported_from", "seconds", "elapsed", "path_to_source", "root"}


def _prepare(name: str, workdir: Path) -> None:
    if name == "quickstart":
        (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
        return
    install_config(name, workdir)
    if name == "own_embeddings":
        digits_npz(workdir / "emb/mydigits")
    if name == "joined":
        imagenet_tree(workdir)
    if name == "by_name":
        digit_image_folder(workdir / "images", ["d0", "d1", "d2", "d3"], 75)
        tiny_vit(workdir / "models/tiny_vit")


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def fingerprint(path: Path) -> str:
    if path.suffix in (".parquet", ".csv"):
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        timings = [c for c in table.columns if str(c).endswith("seconds")]
        data = table.drop(columns=timings).to_csv(index=False).encode()
    elif path.suffix == ".json":
        data = json.dumps(_strip(json.loads(path.read_text())), sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def snapshot(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _prepare(name, workdir)
        plan = snakemake(workdir, "-n")
        snakemake(workdir)
        results = workdir / "results"
        files = {
            str(p.relative_to(results)): fingerprint(p)
            for p in sorted(results.rglob("*"))
            if p.is_file() and p.suffix in KEPT and "logs" not in p.parts
        }
    return {"jobs": job_counts(plan.stdout + plan.stderr), "files": files}


def compare(before: dict, after: dict) -> list[str]:
    problems = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is None or new is None:
            problems.append(f"{name}: only in {'after' if old is None else 'before'}")
            continue
        if old["jobs"] != new["jobs"]:
            problems.append(f"{name}: jobs {old['jobs']} -> {new['jobs']}")
        for f in sorted(set(old["files"]) | set(new["files"])):
            if old["files"].get(f) != new["files"].get(f):
                what = "missing after" if f not in new["files"] else "differs"
                what = "new" if f not in old["files"] else what
                problems.append(f"{name}: {f} {what}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="where to write the snapshot (JSON)")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        problems = compare(before, after)
        print("\n".join(problems) or f"identical: {len(before)} configs")
        return 1 if problems else 0
    if not args.out:
        parser.error("give OUT, or --compare BEFORE AFTER")
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    shots = {}
    for name in args.configs:
        shots[name] = snapshot(name)
        print(f"{name}: {len(shots[name]['files'])} files, commit {commit}", flush=True)
    Path(args.out).write_text(json.dumps(shots, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
