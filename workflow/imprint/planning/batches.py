"""Imprinting jobs that evaluate several small groups in one process.

Every imprinting process pays ~5 s of start-up (Python, torch, scikit-learn, pandas) before
any work; on small data that is most of a group's time (0.5 s of work for a multimodal group
of the quickstart). Groups of one (experiment, dataset, backbone) are therefore packed into
one job while their estimated work stays small: configuration runs × training rows at most
RUNS_X_ROWS_PER_JOB (about a minute on one core at ~1e-5 s per run and row), so large groups
keep a job each (cluster parallelism and time limits are unchanged for them) and data of
unknown size (a backbone's own embedding files, a dataset without sources) is never packed.

A batch is a rectangle, some mappings × all tasks (or a single group), and its table's path
is the group table's with the names joined by '+' (`none/all+even+odd+short.parquet`); a
batch of one group has exactly the group's path.
"""

from __future__ import annotations

from dataclasses import dataclass

from imprint.engine.grid import expand_grid, load_grid
from imprint.planning import paths
from imprint.planning.jobs import Group
from imprint.planning.mappings import resolve_classes, section_mappings

SEP = "+"  # joins the mapping and task names of a batch in its path
RUNS_X_ROWS_PER_JOB = 5_000_000
MAX_FIELD = 200  # characters of a joined name (a path component must stay under 255)

# Training rows and classes of the registry's sources (scikit-learn digits: the 2/3 split),
# for the estimate only; ImageNet has up to 1,300 training images per class.
TRAIN_ROWS = {
    "digits": (1198, 10),
    "MNIST": (60000, 10),
    "FashionMNIST": (60000, 10),
    "CIFAR10": (50000, 10),
    "MNIST-M": (59001, 10),
    "USPS": (7291, 10),
    "SVHN": (73257, 10),
    "ImageNet": (1300 * 1000, 1000),
}


@dataclass(frozen=True)
class Batch:
    """One imprinting job: an experiment's grid on mappings × tasks of one (dataset, backbone)."""

    experiment: str
    dataset: str
    backbone: str
    mappings: tuple[str, ...]
    tasks: tuple[str, ...]

    def groups(self) -> list[Group]:
        """The batch's groups, mapping-major as experiment_groups orders them."""
        e, d, b = self.experiment, self.dataset, self.backbone
        return [Group(e, d, b, m, t) for m in self.mappings for t in self.tasks]

    def path(self) -> str:
        return paths.GROUP_TABLE.format(
            experiment=self.experiment,
            dataset=self.dataset,
            backbone=self.backbone,
            mapping=SEP.join(self.mappings),
            task=SEP.join(self.tasks),
        )


def train_rows(config: dict, dataset: str, backbone: str) -> int | None:
    """An upper estimate of a dataset's training rows; None where it cannot be known."""
    if config["backbones"][backbone].get("embeddings"):
        return None  # the user's own files: any size
    spec = config["datasets"][dataset]
    limit = config.get("extraction", {}).get("limit_per_class")
    total = 0
    for source in spec.get("sources") or [None]:
        if source not in TRAIN_ROWS:
            return None
        rows, n_classes = TRAIN_ROWS[source]
        classes = resolve_classes(spec.get("classes")) if len(spec["sources"]) == 1 else None
        if classes is not None:
            rows, n_classes = rows * len(classes) // n_classes + 1, len(classes)
        total += rows if limit is None else min(rows, limit * n_classes)
    return total


def grid_runs(config: dict, experiment: str) -> int:
    """Configuration runs (configurations × seeds) of an experiment's grid, for one group."""
    grid = config["experiments"][experiment]["grid"]
    if isinstance(grid, str):
        grid = load_grid(grid)[1]
    return len(expand_grid(grid))


def experiment_batches(config: dict, experiment: str) -> list[Batch]:
    """Every imprinting job of an experiment, in experiment_groups' order."""
    exp = config["experiments"][experiment]
    tasks = tuple(exp["tasks"])
    runs = None  # expanded only where some data has a known size
    batches = []
    for d in exp["datasets"]:
        mappings = section_mappings(config, exp, d, f"experiments.{experiment}")
        for b in exp["backbones"]:
            rows = train_rows(config, d, b)
            if rows is not None and runs is None:
                runs = grid_runs(config, experiment)
            cost = None if rows is None else runs * rows * len(tasks)
            batches += [Batch(experiment, d, b, *r) for r in _rectangles(mappings, tasks, cost)]
    return batches


def _rectangles(mappings: list[str], tasks: tuple[str, ...], cost: int | None) -> list[tuple]:
    """(mappings, tasks) of each job: runs of consecutive mappings with all tasks, while the
    work (`cost` per mapping) and the joined names stay small; else one group per job."""
    if cost is None or cost > RUNS_X_ROWS_PER_JOB or len(SEP.join(tasks)) > MAX_FIELD:
        return [((m,), (t,)) for m in mappings for t in tasks]
    runs: list[list[str]] = []
    for m in mappings:
        if runs and (
            cost * (len(runs[-1]) + 1) <= RUNS_X_ROWS_PER_JOB
            and len(SEP.join([*runs[-1], m])) <= MAX_FIELD
        ):
            runs[-1].append(m)
        else:
            runs.append([m])
    return [(tuple(run), tasks) for run in runs]
