"""The engine: evaluate every configuration of a grid on one task, sharing all shared work.

Work is shared, never repeated: presampled training sets per (NORMpre, presampling,
few-shot draw); proxies per (GEN, k, seed) — once for all seeds when GEN draws nothing at
random; normalised proxies per NORMpost; one matrix product per family of proxies (as
generated, read by NORMpost none and l2 and both NORMinf; quantile-normalised), from which
imprint.engine.scores derives every max-inner-product, cosine and Euclidean answer; nearest-proxy
lists once per (proxies, NORMinf, distance) for the largest m, from which every m and
weighting is read.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from imprint.engine.aggregate import clip_m, mahalanobis_transform, nearest_proxies, vote
from imprint.engine.centring import task_variants
from imprint.engine.devices import resolve_device
from imprint.engine.generate import generate_proxies, training_set_cache
from imprint.engine.grid import CONFIG_KEYS, config_id
from imprint.engine.metrics import accuracy_percent, correct_per_class, f1_per_class
from imprint.engine.normalize import apply_norm, apply_norm_post
from imprint.engine.presample import presample_classes
from imprint.engine.scores import Request, SharedTests, family_scores
from imprint.engine.tasks import task_rows, task_text_proxies, warn_rows_beyond
from imprint.engine.vocabulary import (
    DEFAULT_LS_PRECISION,
    LS_PRECISIONS,
    METHOD_GEN,
    PROBE_GEN,
    SEEDED_GEN,
)
from imprint.io import progress_bar

SAMPLE_KEYS = ["norm_pre", "presampling", "quantile_lo", "quantile_hi", "fewshot", "sample_seed"]
RESULT_COLUMNS = [
    "config_id",
    *CONFIG_KEYS,
    "seed",
    "accuracy",
    "f1_macro",
    "f1_per_class",
    "n_proxies",
    "gen_seconds",
    "inference_seconds",
]


def rows_by_class(
    embeddings: np.ndarray, rows: np.ndarray, index: np.ndarray, n_classes: int, device
) -> list[torch.Tensor]:
    """embeddings[rows] grouped by class index (task order), file order within a class.

    One gather straight from the (memory-mapped) array, so the task's rows are copied once.
    """
    order = np.lexsort((rows, index))  # by class, then by file row
    x = torch.from_numpy(np.ascontiguousarray(embeddings[rows[order]], dtype=np.float32))
    return list(torch.split(x.to(device), np.bincount(index, minlength=n_classes).tolist()))


def _result_row(pred: torch.Tensor, task: _Task) -> dict:
    truth, n_classes = task.truth, task.n_classes
    f1 = f1_per_class(pred, truth, n_classes)
    row = {
        "accuracy": accuracy_percent(pred, truth),
        "f1_macro": float(np.mean(f1)),
        "f1_per_class": json.dumps([round(v, 6) for v in f1]),
    }
    if task.count_correct:
        row["correct_per_class"] = json.dumps(correct_per_class(pred, truth, n_classes))
    return row


def evaluate_grid(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    test_embeddings: np.ndarray,
    test_labels: np.ndarray,
    configs: pd.DataFrame,
    classes: Sequence[int],
    mapping: Mapping[int, int] | None = None,
    ls_lambda: float | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    ls_precision: str = DEFAULT_LS_PRECISION,
    data_names: tuple[str, str] = ("training embeddings", "test embeddings"),
    count_correct: bool = False,
    text_proxies: tuple[np.ndarray, np.ndarray] | None = None,
    center: np.ndarray | None = None,
    base_classes: int | None = None,
    method_options: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Accuracy (percent) and one-vs-rest F1 of every configuration × seed on one task.

    `configs` has the columns CONFIG_KEYS and `seed` (as made by grid.expand_grid). The task
    is `classes` (label ids after `mapping`); class i of the imprinted model is classes[i],
    which also fixes the order quantile NORMpost sees. Returns one row per input row, in
    input order, with the columns RESULT_COLUMNS. Times are those of the shared computations
    each configuration used, so rows that share work report the same seconds. ls/kls use
    `ls_lambda` and `ls_precision` (see generate.least_squares_weights). `data_names` are what
    errors call the training and test data (the command passes the file names).
    `count_correct` adds a column correct_per_class: each class's correctly predicted test
    rows (a JSON list in task order), from which accuracies over class subsets follow.
    `text_proxies`: (vectors [L, D], labels [L]), one text proxy per dataset label, which GEN
    text and text_mean read (tasks.task_text_proxies maps them onto the task's classes).
    `center` [D]: the mean NORMpre/NORMinf center_l2 subtract (None: the mean of the task's
    training rows); `base_classes`: how many classes, first in task order, make the base
    session GEN teen calibrates the others towards (None: all). FeCAM, RanPAC and FeTrIL
    (engine/incremental_methods.py) see every class at once here, with `method_options`
    ({method: its options}; unset: the papers').
    """
    _check_grid_inputs(configs, ls_precision)
    device = resolve_device(device)
    train, test = (train_embeddings, train_labels), (test_embeddings, test_labels)
    task = _task_tensors(train, test, classes, mapping, device, data_names)
    texts = None if text_proxies is None else _task_texts(text_proxies, task, mapping)
    task = dataclasses.replace(
        task,
        count_correct=count_correct,
        text=texts,
        base_classes=base_classes,
        method_options=method_options,
    )
    _warn_fewshot_beyond_classes(configs, task)
    work = _with_draw_seeds(configs)
    unique = list(work.drop(columns="seed").drop_duplicates().itertuples(index=False))

    bar = progress_bar(total=len(unique), disable=not progress, desc="configurations", unit="cfg")
    results = _run_all(task, unique, center, ls_lambda, ls_precision, bar)
    bar.close()
    return _results_table(configs, work, results)


def _check_grid_inputs(configs: pd.DataFrame, ls_precision: str) -> None:
    """A ValueError for an unknown ls_precision or a configuration table lacking a column."""
    if ls_precision not in LS_PRECISIONS:
        raise ValueError(
            f"unknown ls_precision '{ls_precision}'; allowed: {', '.join(LS_PRECISIONS)}"
        )
    missing = [c for c in (*CONFIG_KEYS, "seed") if c not in configs.columns]
    if missing:
        raise ValueError(f"configuration table lacks column(s) {missing}")


def _run_all(task: _Task, unique: list, center, ls_lambda, ls_precision, bar) -> dict:
    """{configuration key: result} of every distinct configuration (named tuples)."""
    results: dict[tuple, dict] = {}
    # NORMpre center_l2 runs as NORMpre l2 on a centred copy of the task (engine/centring.py).
    for run_task, rows, relabel in task_variants(task, unique, center):
        found: dict[tuple, dict] = {}
        for sample_key, by_sample in _sample_groups(rows).items():
            # One presampled training set at a time: the call frees it before the next.
            _run_presampled(run_task, sample_key, by_sample, ls_lambda, ls_precision, found, bar)
        results |= relabel(found)
    return results


def _warn_fewshot_beyond_classes(configs: pd.DataFrame, task: _Task) -> None:
    """One warning line where a few-shot n exceeds a class: SPEC has such a class use all its
    rows, so that n-shot is partly a larger-shot run."""
    sizes = {c: int(x.shape[0]) for c, x in zip(task.classes, task.train, strict=True)}
    warn_rows_beyond("few-shot n", configs["fewshot"].unique(), sizes, stacklevel=4)


@dataclasses.dataclass(frozen=True)
class _Task:
    """One task's data on the device: training rows per class, test rows, true test classes."""

    classes: Sequence[int]
    train: list[torch.Tensor]
    test: dict[str, torch.Tensor]  # by NORMinf: "none" (as stored) and "l2"
    truth: torch.Tensor  # class index (task order) of each test row
    device: torch.device
    test_shared: SharedTests  # what every family of the test rows shares (norms, unit rows)
    count_correct: bool = False  # results also count each class's correct test rows
    text: list[torch.Tensor] | None = None  # each class's text proxy [1, D] (GEN text)
    base_classes: int | None = None  # GEN teen: the first classes, the base session
    method_options: Mapping | None = None  # GEN fecam, ranpac, fetril: {method: options}

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _task_tensors(train, test, classes, mapping, device, data_names) -> _Task:
    """The task's rows of `train` and `test`, each (embeddings, labels), checked, as float32
    tensors on the device."""
    (train_embeddings, train_labels), (test_embeddings, test_labels) = train, test
    train_rows, train_index = task_rows(train_labels, classes, mapping, where=data_names[0])
    test_rows, test_index = task_rows(test_labels, classes, mapping, where=data_names[1])
    if train_embeddings.shape[1] != test_embeddings.shape[1]:
        raise ValueError(
            f"{data_names[0]} have dimension {train_embeddings.shape[1]} but {data_names[1]} "
            f"{test_embeddings.shape[1]}: they must come from the same backbone"
        )
    by_class = rows_by_class(train_embeddings, train_rows, train_index, len(classes), device)
    test_order = np.argsort(test_rows)
    test_raw = torch.from_numpy(
        np.ascontiguousarray(test_embeddings[test_rows[test_order]], dtype=np.float32)
    ).to(device)
    truth = torch.from_numpy(test_index[test_order]).to(device)
    test_by_norm = {"none": test_raw, "l2": apply_norm(test_raw, "l2")}
    return _Task(classes, by_class, test_by_norm, truth, device, SharedTests.of(test_by_norm))


def _task_texts(text_proxies, task: _Task, mapping) -> list[torch.Tensor]:
    vectors, labels = text_proxies
    dim = int(task.test["none"].shape[1])
    if np.shape(vectors)[1] != dim:
        raise ValueError(
            f"text proxies have dimension {np.shape(vectors)[1]} but the embeddings {dim}: "
            "they must come from the same CLIP-like backbone"
        )
    per_class = task_text_proxies(vectors, labels, task.classes, mapping)
    return [torch.from_numpy(t).to(task.device) for t in per_class]


def _with_draw_seeds(configs: pd.DataFrame) -> pd.DataFrame:
    """The configuration columns plus the seeds GEN (`gen_seed`) and few-shot sampling
    (`sample_seed`) draw from: -1 where nothing is drawn, so one run serves every seed."""
    work = configs[[*CONFIG_KEYS, "seed"]].copy()
    random_draw = work["gen"].isin(SEEDED_GEN) | (work["fewshot"] != -1)
    work["gen_seed"] = np.where(random_draw, work["seed"], -1)
    work["sample_seed"] = np.where(work["fewshot"] != -1, work["seed"], -1)
    return work


def _run_presampled(task: _Task, sample_key, rows, ls_lambda, ls_precision, results, bar) -> None:
    """Every configuration of one presampled training set into `results`: presampling once,
    GEN once per (gen, k, seed), NORMpost once per proxies, then inference."""
    norm_pre, presampling, q_lo, q_hi, fewshot, sample_seed = sample_key
    t0 = time.perf_counter()
    # With few-shot sampling, sample_seed == gen_seed == the row's seed (one stream).
    samples, stream_state = presample_classes(
        task.train, norm_pre, presampling, q_lo, q_hi, fewshot, max(sample_seed, 0), task.classes
    )
    presample_seconds = time.perf_counter() - t0
    by_gen = _group(rows, ["gen", "k", "alpha", "gen_seed"])
    cache = training_set_cache((gen, k) for gen, k, _, _ in by_gen)  # work these GENs share
    for (gen, k, alpha, gen_seed), by_proxies in by_gen.items():
        if gen == PROBE_GEN or gen in METHOD_GEN:
            fit = _probe if gen == PROBE_GEN else _method_rows
            fit(task, samples, max(int(gen_seed), 0), by_proxies, presample_seconds, results)
            bar.update(len(by_proxies))
            continue
        t0 = time.perf_counter()
        raw = generate_proxies(
            samples,
            gen,
            int(k),
            max(int(gen_seed), 0),
            ls_lambda,
            cache,
            stream_state,
            ls_precision,
            task.text,
            float(alpha),
            task.base_classes,
        )
        raw_seconds = presample_seconds + time.perf_counter() - t0
        _infer(task, raw, norm_pre, by_proxies, raw_seconds, results)
        bar.update(len(by_proxies))


def _method_rows(*args) -> None:
    """GEN fecam, ranpac or fetril (engine/method_runs.py, which reads this module)."""
    from imprint.engine.method_runs import method_rows

    method_rows(*args)


def _probe(task: _Task, samples, seed: int, rows, presample_seconds: float, results) -> None:
    """GEN linear_probe (not in the paper): the probe of engine/baselines.py fitted on the
    presampled training rows (its penalty search holding out rows drawn with `seed`), its
    logits x·W + b read by AGG max, per NORMinf of the test rows."""
    from imprint.engine.baselines import linear_probe

    t0 = time.perf_counter()
    sizes = torch.tensor([int(x.shape[0]) for x in samples])
    classes = torch.repeat_interleave(torch.arange(task.n_classes), sizes)
    probe, _ = linear_probe(torch.cat(samples), classes, task.n_classes, seed=seed)
    gen_seconds = presample_seconds + time.perf_counter() - t0
    for (norm_inf,), group in _group(rows, ["norm_inf"]).items():
        t0 = time.perf_counter()
        res = _result_row(probe.predict(task.test[norm_inf]), task)
        res.update(
            n_proxies=task.n_classes,
            gen_seconds=gen_seconds,
            inference_seconds=time.perf_counter() - t0,
        )
        for row in group:
            key = tuple(getattr(row, k) for k in (*CONFIG_KEYS, "gen_seed", "sample_seed"))
            results[key] = dict(res)


def _results_table(configs: pd.DataFrame, work: pd.DataFrame, results: dict) -> pd.DataFrame:
    """One row per configuration × seed, in input order, with the columns RESULT_COLUMNS."""
    keys = [*CONFIG_KEYS, "gen_seed", "sample_seed"]
    rows = [results[tuple(r)] for r in work[keys].itertuples(index=False, name=None)]
    out = pd.concat(
        [configs.reset_index(drop=True)[[*CONFIG_KEYS, "seed"]], pd.DataFrame(rows)], axis=1
    )
    out.insert(0, "config_id", [config_id(r) for r in out[list(CONFIG_KEYS)].to_dict("records")])
    return out[RESULT_COLUMNS + (["correct_per_class"] if "correct_per_class" in out else [])]


def _group(rows: list, fields: list[str]) -> dict[tuple, list]:
    """Rows (named tuples) grouped by the values of `fields`, groups in first-seen order.

    A dict instead of DataFrame.groupby: grids run thousands of tiny groups, where pandas'
    per-group overhead (milliseconds) would outweigh the work itself.
    """
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault(tuple(getattr(row, f) for f in fields), []).append(row)
    return groups


def _sample_groups(rows: list) -> dict[tuple, list]:
    """Rows by presampled training set. GEN all with NORMpre l2 and presampling all joins
    the NORMpre none set: its proxies are those rows L2-normalised, a view of the same
    product (scores.family_scores), so both NORMpre share one (few-shot draws pick the same
    rows either way: they depend on the class sizes only)."""
    groups: dict[tuple, list] = {}
    for row in rows:
        key = tuple(getattr(row, f) for f in SAMPLE_KEYS)
        if row.gen == "all" and row.norm_pre == "l2" and row.presampling == "all":
            key = ("none", *key[1:])
        groups.setdefault(key, []).append(row)
    return groups


def _infer(task: _Task, raw, sample_norm_pre: str, rows, raw_seconds: float, results) -> None:
    """Predictions for every configuration of one set of generated proxies.

    One product per family of proxies (scores.family_scores): the proxies as generated, read
    by NORMpost none and l2 (row scalings), by both NORMinf and, for GEN all, by NORMpre l2
    too (see _sample_groups); the quantile-normalised ones per NORMpre. Every AGG reads its
    family's product; Manhattan, Chebyshev and Mahalanobis lists are computed per (NORMpre,
    NORMpost, NORMinf, distance). Each list is made once, for the largest m any configuration
    needs, and every m and weighting reads a prefix of it.
    """
    proxies, gen_seconds = {}, {}
    for norm_pre, norm_post in _group(rows, ["norm_pre", "norm_post"]):
        t0 = time.perf_counter()
        generated = raw if norm_pre == sample_norm_pre else [apply_norm(c, "l2") for c in raw]
        proxies[norm_pre, norm_post] = torch.cat(apply_norm_post(generated, norm_post))
        gen_seconds[norm_pre, norm_post] = raw_seconds + time.perf_counter() - t0
    sizes = [int(p.shape[0]) for p in raw]
    n_proxies = sum(sizes)
    proxy_class = torch.repeat_interleave(
        torch.arange(task.n_classes, device=task.device), torch.tensor(sizes, device=task.device)
    )
    plan = {_answer_key(row): 0 for row in rows}
    for row in rows:
        if row.agg == "mnn" or row.distance != "inner_product":
            key = _answer_key(row)
            m = clip_m(1 if row.agg == "max" else int(row.m), n_proxies)
            plan[key] = max(plan[key], m)
    answers = _answers(task, raw, sample_norm_pre, proxies, sizes, plan)

    votes = _votes(rows, answers, proxy_class, task.n_classes, n_proxies)
    for row in rows:
        key = _answer_key(row)
        answer, seconds = answers[key]
        if row.agg == "max" and row.distance == "inner_product":
            pred = answer
        else:
            m = min(1 if row.agg == "max" else int(row.m), n_proxies)
            pred, vote_seconds = votes[key, row.weighting][m]
            seconds += vote_seconds
        res = _result_row(pred, task)
        res.update(
            n_proxies=n_proxies,
            gen_seconds=gen_seconds[row.norm_pre, row.norm_post],
            inference_seconds=seconds,
        )
        results[tuple(getattr(row, k) for k in (*CONFIG_KEYS, "gen_seed", "sample_seed"))] = res


def _votes(rows, answers: dict, proxy_class, n_classes: int, n_proxies: int) -> dict:
    """{(answer key, weighting): {m: (predictions, seconds)}}: one running vote per
    neighbour list and weighting serves every m (aggregate.vote)."""
    wanted: dict = {}
    for row in rows:
        if not (row.agg == "max" and row.distance == "inner_product"):
            m = min(1 if row.agg == "max" else int(row.m), n_proxies)
            wanted.setdefault((_answer_key(row), row.weighting), set()).add(m)
    votes = {}
    for (key, weighting), ms in wanted.items():
        dist, idx = answers[key][0]
        depth = max(ms)
        t0 = time.perf_counter()
        preds = vote(proxy_class[idx[:, :depth]], dist[:, :depth], sorted(ms), weighting, n_classes)
        per_m = (time.perf_counter() - t0) / len(ms)
        votes[key, weighting] = {m: (p, per_m) for m, p in preds.items()}
    return votes


def _answer_key(row) -> tuple:
    """What a configuration reads: (family, scores.Request without depth) for the AGGs one
    product serves, ("list", NORMpre, NORMpost, NORMinf, distance) for the others. Views are
    named by (NORMpre, NORMpost)."""
    family = ("quantile", row.norm_pre) if row.norm_post == "quantile" else ("generated",)
    view = f"{row.norm_pre}/{row.norm_post}"
    if row.agg == "max" and row.distance == "inner_product":
        return (family, Request("max", "inner_product", view))
    if row.distance == "cosine":  # directions: NORMinf and NORMpost l2 do not change them
        return (family, Request("nearest", "cosine", depth=0))
    if row.distance == "euclidean":
        return (family, Request("nearest", "euclidean", view, row.norm_inf, depth=0))
    if row.distance == "mahalanobis":  # Euclidean after a whitening map of these proxies
        family = ("mahalanobis", row.norm_pre, row.norm_post)
        return (family, Request("nearest", "euclidean", "base", row.norm_inf, depth=0))
    return ("list", row.norm_pre, row.norm_post, row.norm_inf, row.distance)


def _answers(task: _Task, raw, sample_norm_pre, proxies: dict, sizes: list, plan: dict) -> dict:
    """{answer key: (answer, seconds)} for every key of `plan` (key → depth of its list)."""
    answers = {}
    for family in dict.fromkeys(k[0] for k in plan if k[0] != "list"):
        keys = [k for k in plan if k[0] == family]
        t0 = time.perf_counter()
        tests = task.test
        if family[0] == "mahalanobis":
            tests, base = _whitened(task.test, proxies[family[1:]], {k[1].norm_inf for k in keys})
        elif family[0] == "quantile":
            base = proxies[family[1], "quantile"]
        else:
            base = proxies.get((sample_norm_pre, "none"))
            base = torch.cat(raw) if base is None else base
        # Requests on the base's own view read "base"; every other view is a row scaling.
        views = {"base": base}
        requests = []
        for key in keys:
            request = dataclasses.replace(key[1], depth=plan[key])
            name = "base" if family[0] == "mahalanobis" else request.view
            name = _view_name(name, family, sample_norm_pre)
            if name != "base":
                stored = proxies[tuple(name.split("/"))]
                # NORMpre l2 of GEN all and NORMpost l2 are the same rows: one view.
                name = next((n for n, v in views.items() if v is stored or _same(v, stored)), name)
                views.setdefault(name, stored)
            requests.append(dataclasses.replace(request, view=name))
        # The test rows' float64 norms and unit rows once per task, not per family.
        shared = task.test_shared if tests is task.test else None
        out = family_scores(tests, views, sizes, requests, shared)
        seconds = time.perf_counter() - t0
        answers.update({k: (out[r], seconds) for k, r in zip(keys, requests)})
    for key in [k for k in plan if k[0] == "list"]:
        _, norm_pre, norm_post, norm_inf, distance = key
        t0 = time.perf_counter()
        answer = nearest_proxies(
            task.test[norm_inf], proxies[norm_pre, norm_post], distance, plan[key]
        )
        answers[key] = (answer, time.perf_counter() - t0)
    return answers


def _whitened(test: dict, proxies: torch.Tensor, norm_infs: set) -> tuple[dict, torch.Tensor]:
    """Test variants and proxies mapped by the proxies' Mahalanobis transform (float64)."""
    t = mahalanobis_transform(proxies)
    tests = {v: test[v].to(torch.float64) @ t for v in {"none", *norm_infs}}
    return tests, proxies.to(torch.float64) @ t


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b))


def _view_name(view: str, family: tuple, sample_norm_pre: str) -> str:
    """The family's name for a (NORMpre, NORMpost) view: "base" for the base itself."""
    if view == "base":  # cosine: the base's directions
        return view
    norm_pre, norm_post = view.split("/")
    if family[0] == "quantile" or (norm_pre == sample_norm_pre and norm_post == "none"):
        return "base"
    return view
