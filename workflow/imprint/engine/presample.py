"""Before GEN: NORMpre, the Weibull quantile filter and few-shot sampling of each class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import weibull_min

from imprint.engine.normalize import apply_norm
from imprint.engine.vocabulary import PRESAMPLING  # noqa: F401  (re-exported)


def weibull_filter(x: torch.Tensor, q_lo: float, q_hi: float) -> torch.Tensor:
    """Keep the samples whose distance from the class mean lies between two Weibull quantiles.

    A three-parameter Weibull (scipy's weibull_min.fit: shape, loc, scale) is fitted to every
    sample's Euclidean distance from the class mean; samples with a distance inside
    [ppf(q_lo), ppf(q_hi)] of the fitted distribution are kept.
    """
    if not 0.0 <= q_lo < q_hi <= 1.0:
        raise ValueError(
            f"presampling quantiles must satisfy 0 <= q_lo < q_hi <= 1, got {q_lo}, {q_hi}"
        )
    xd = x.to(torch.float64)  # float32 sums round differently per device; the fit would follow
    d = torch.linalg.vector_norm(xd - xd.mean(dim=0), dim=1).cpu().numpy()
    params = weibull_min.fit(d)
    lo, hi = weibull_min.ppf([q_lo, q_hi], *params)
    keep = (d >= lo) & (d <= hi)
    return x[torch.from_numpy(np.flatnonzero(keep)).to(x.device)]


def fewshot_sample(x: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """Draw n samples uniformly without replacement (all of them if the class has fewer).

    n = -1 keeps every sample and draws nothing from the generator.
    """
    if n == -1:
        return x
    perm = torch.randperm(x.shape[0], generator=generator)[: min(n, x.shape[0])]
    return x[perm.to(x.device)]


def presample_classes(
    train: list[torch.Tensor],
    norm_pre: str,
    presampling: str,
    q_lo: float,
    q_hi: float,
    fewshot: int,
    seed: int,
    classes: Sequence[int] | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """NORMpre, the Weibull filter and few-shot sampling, class by class in task order.

    One configuration draws from one generator seeded with `seed` (as the reference seeds one
    per run): the few-shot draws come first, class by class, and GEN continues the same
    stream. Returns the presampled classes and the generator state GEN continues from, or
    None where nothing was drawn (no few-shot sampling: GEN starts the stream itself).
    `classes` (the task's class ids) only name a class in errors.
    """
    generator = torch.Generator().manual_seed(int(seed))
    out = []
    for c, x in enumerate(train):
        x = apply_norm(x, norm_pre)
        if presampling == "weibull":
            x = weibull_filter(x, q_lo, q_hi)
        x = fewshot_sample(x, int(fewshot), generator)
        if x.shape[0] == 0:
            name = f"class {classes[c]}" if classes is not None else f"class at task position {c}"
            raise ValueError(
                f"{name} has no training samples left after presampling "
                f"'{presampling}' (quantiles {q_lo}, {q_hi}); widen the quantiles"
            )
        out.append(x)
    return out, (generator.get_state() if int(fewshot) != -1 else None)
