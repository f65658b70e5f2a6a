"""NORMpre and NORMinf center_l2 (not in the paper): SimpleShot's CL2N (Wang et al. 2019,
"SimpleShot: Revisiting Nearest-Neighbor Classification for Few-Shot Learning"), every row
minus one mean, then L2-normalised, training and test rows alike.

The engine runs such configurations as NORMpre/NORMinf l2 on a centred copy of the task, so
every GEN, NORMpost and AGG reads them unchanged; their results are then filed back under
center_l2. The mean is given (an incremental protocol's base session's, so that it stays
fixed as classes arrive) or the task's training rows' (summed in float64).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from imprint.engine.normalize import apply_norm
from imprint.engine.scores import SharedTests
from imprint.engine.vocabulary import CONFIG_KEYS, TEXT_GEN

CENTRED = "center_l2"
_NORM_POSITIONS = (CONFIG_KEYS.index("norm_pre"), CONFIG_KEYS.index("norm_inf"))


def centre_mean(train: list[torch.Tensor]) -> np.ndarray:
    """The float64 mean [D] of every training row of the task (its classes' rows)."""
    total = sum(x.sum(dim=0, dtype=torch.float64) for x in train)
    return (total / sum(int(x.shape[0]) for x in train)).cpu().numpy()


def centred_task(task, center: np.ndarray | None):
    """The task (engine/evaluate._Task) with its training and test rows minus `center` (None:
    the training rows' mean), in float64 then rounded to float32 once."""
    mean = centre_mean(task.train) if center is None else np.asarray(center, dtype=np.float64)
    dim = int(task.test["none"].shape[1])
    if mean.shape != (dim,):
        raise ValueError(f"center_l2: the mean has shape {mean.shape}, the embeddings {dim} dims")
    mu = torch.from_numpy(mean).to(task.device)

    def minus(x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float64) - mu).to(x.dtype)

    test = minus(task.test["none"])
    tests = {"none": test, "l2": apply_norm(test, "l2")}
    return dataclasses.replace(
        task, train=[minus(x) for x in task.train], test=tests, test_shared=SharedTests.of(tests)
    )


def task_variants(task, rows: list, center: np.ndarray | None) -> list[tuple]:
    """[(task, rows, relabel)]: the rows (configurations as named tuples) that read the task
    as it is, and those with NORMpre center_l2, relabelled l2 and paired with the centred
    task; relabel(results) files each result (keyed by CONFIG_KEYS values first) back under
    the configuration's own keys."""
    plain = [r for r in rows if r.norm_pre != CENTRED]
    centred = [r for r in rows if r.norm_pre == CENTRED]
    out = [(task, plain, _same)] if plain else []
    if centred:
        text = sorted({r.gen for r in centred} & set(TEXT_GEN))
        if text:
            raise ValueError(
                f"GEN {', '.join(text)} with NORMpre center_l2: the text proxies are not "
                "centred by the image rows' mean; use NORMpre none or l2"
            )
        as_l2 = [r._replace(norm_pre="l2", norm_inf="l2") for r in centred]
        out.append((centred_task(task, center), as_l2, _back_to_centred))
    return out


def _same(results: dict) -> dict:
    return results


def _back_to_centred(results: dict) -> dict:
    def key(k: tuple) -> tuple:
        k = list(k)
        for position in _NORM_POSITIONS:
            k[position] = CENTRED
        return tuple(k)

    return {key(k): v for k, v in results.items()}
