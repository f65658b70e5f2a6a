"""The named class-incremental methods (GEN fecam, ranpac, fetril; engine/incremental_methods.py)
as result rows of the engine's form: inside evaluate_grid, where a method sees every class in
one session, and session by session for engine/incremental.py.

A method reads the training rows after NORMpre (and presampling), the test rows after NORMinf,
as the linear probe does; NORMpost and AGG do not apply (the grid holds placeholders). After
each session it predicts among the classes seen so far, and is scored on their test rows.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from imprint.engine.centring import task_variants
from imprint.engine.evaluate import (
    _group,
    _result_row,
    _results_table,
    _task_tensors,
    _with_draw_seeds,
)
from imprint.engine.grid import CONFIG_KEYS
from imprint.engine.incremental_methods import run_method_sessions
from imprint.engine.presample import presample_classes

_KEY = (*CONFIG_KEYS, "gen_seed", "sample_seed")


def method_rows(task, samples: list[torch.Tensor], seed: int, rows, presample_seconds, results):
    """evaluate_grid's GEN fecam, ranpac or fetril on one presampled training set (`samples`,
    per class in task order): every class in one session, per NORMinf of the test rows."""
    features = torch.cat(samples).cpu().numpy()
    labels = np.repeat(np.arange(len(samples)), [int(x.shape[0]) for x in samples])
    for (gen, norm_inf), group in _group(rows, ["gen", "norm_inf"]).items():
        t0 = time.perf_counter()
        test = task.test[norm_inf].cpu().numpy()
        options = (task.method_options or {}).get(gen)
        *_, pred = run_method_sessions(gen, [(features, labels)], test, seed, options, task.device)
        res = _result_row(torch.from_numpy(np.asarray(pred)).to(task.device), task)
        seconds = time.perf_counter() - t0
        res.update(n_proxies=len(samples), gen_seconds=presample_seconds + seconds,
                   inference_seconds=0.0)  # fmt: skip
        for row in group:
            results[tuple(getattr(row, k) for k in _KEY)] = dict(res)


def method_session_tables(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    configs: pd.DataFrame,
    sessions: Sequence[Sequence[int]],
    mapping: Mapping[int, int] | None = None,
    center: np.ndarray | None = None,
    device=None,
    data_names: tuple[str, str] = ("training embeddings", "test embeddings"),
    method_options: Mapping[str, Mapping] | None = None,
) -> list[pd.DataFrame]:
    """Per session, evaluate_grid's table (with correct_per_class) of every configuration of
    `configs` (GEN fecam, ranpac or fetril only), each method run once through all `sessions`
    (class ids after `mapping`, base first) on `train` = (embeddings, labels): the rows the
    protocol gives the sessions' classes; `test`: every test row. `center`: the mean of
    NORMpre center_l2 (the base session's); `method_options`: {method: its options}."""
    from imprint.engine.devices import resolve_device

    classes = [int(c) for s in sessions for c in s]
    task = _task_tensors(train, test, classes, mapping, resolve_device(device), data_names)
    task = dataclasses.replace(task, count_correct=True, method_options=method_options)
    work = _with_draw_seeds(configs)
    unique = list(work.drop(columns="seed").drop_duplicates().itertuples(index=False))
    found: list[dict] = [{} for _ in sessions]
    for run_task, rows, relabel in task_variants(task, unique, center):
        mine: list[dict] = [{} for _ in sessions]
        for row in rows:
            _run_sessions(run_task, row, sessions, mine)
        for s, results in enumerate(mine):
            found[s] |= relabel(results)
    return [_results_table(configs, work, results) for results in found]


def _run_sessions(task, row, sessions: Sequence[Sequence[int]], found: list[dict]) -> None:
    """One configuration through every session into found[session]."""
    t0 = time.perf_counter()
    samples, _ = presample_classes(task.train, row.norm_pre, row.presampling, row.quantile_lo,
                                   row.quantile_hi, -1, 0, task.classes)  # fmt: skip
    ends = np.cumsum([len(s) for s in sessions])
    starts = np.concatenate([[0], ends[:-1]])
    data = []
    for start, end in zip(starts, ends, strict=True):
        part = samples[start:end]
        features = torch.cat(part).cpu().numpy()
        labels = np.repeat(np.arange(start, end), [int(x.shape[0]) for x in part])
        data.append((features, labels))
    test = task.test[row.norm_inf].cpu().numpy()
    truth = task.truth.cpu().numpy()
    seed = max(int(row.gen_seed), 0)
    options = (task.method_options or {}).get(row.gen)
    predictions = run_method_sessions(row.gen, data, test, seed, options, task.device)
    for s, pred in enumerate(predictions):
        seen = truth < ends[s]
        sub = dataclasses.replace(task, classes=task.classes[: ends[s]],
                                  truth=task.truth[torch.from_numpy(seen).to(task.device)])  # fmt: skip
        res = _result_row(torch.from_numpy(np.asarray(pred)[seen]).to(task.device), sub)
        res.update(n_proxies=int(ends[s]), gen_seconds=time.perf_counter() - t0,
                   inference_seconds=0.0)  # fmt: skip
        found[s][tuple(getattr(row, k) for k in _KEY)] = res
