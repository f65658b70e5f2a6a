"""GENs that blend each class's mean with other vectors: text_mean with the class's text proxy
(zero-shot CLIP, not in the paper) and TEEN with the base session's class means (Wang et al.,
"Few-Shot Class-Incremental Learning via Training-Free Prototype Calibration", NeurIPS 2023;
not in the paper). Each is a GEN function of engine/generate.py's form (samples per class, k,
GenInputs) -> proxies per class; α = 0 gives GEN mean in both.
"""

from __future__ import annotations

import torch

from imprint.engine.generate import GenInputs, class_means
from imprint.engine.vocabulary import TEEN_TEMPERATURE


def _class_texts(samples: list[torch.Tensor], inputs: GenInputs, gen: str) -> list[torch.Tensor]:
    if inputs.text is None:
        raise ValueError(
            f"GEN {gen} needs the classes' text proxies (a CLIP-like backbone's prompt "
            "embeddings, data/text_proxies.py): pass text_proxies"
        )
    if len(inputs.text) != len(samples):
        raise ValueError(f"GEN {gen}: {len(inputs.text)} text proxies for {len(samples)} classes")
    return inputs.text


def _alpha(inputs: GenInputs, gen: str) -> float:
    alpha = float(inputs.alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"GEN {gen} takes α in [0, 1], got {alpha}")
    return alpha


def text_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN text (zero-shot): each class's text proxy, whatever its images."""
    return [t.clone() for t in _class_texts(samples, inputs, "text")]


def text_mean_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN text_mean: α · text proxy + (1 − α) · GEN mean's proxy, per class. α = 0 gives GEN
    mean bit for bit (0 · t adds zeros, 1 · m is m); α = 1 gives GEN text."""
    texts = _class_texts(samples, inputs, "text_mean")
    alpha = _alpha(inputs, "text_mean")
    means = class_means(samples, 1, inputs)
    return [alpha * t.to(m.dtype) + (1.0 - alpha) * m for t, m in zip(texts, means, strict=True)]


def teen_proxies(samples: list[torch.Tensor], k: int, inputs: GenInputs) -> list[torch.Tensor]:
    """GEN teen (TEEN's training-free calibration). The first `inputs.base_classes` classes
    (the base session; None: every class) keep GEN mean's proxy. Each later class c, with
    mean m_c and the base means m_b, unit vectors written û:

        w_b = softmax_b(τ · û_c · û_b),  δ_c = unit(Σ_b w_b û_b),
        p_c = ‖m_c‖ · ((1 − α) û_c + α δ_c),

    τ = TEEN_TEMPERATURE (16) and α = the grid's α (TEEN's shift weight: the authors use 0.1
    on CIFAR-100, 0.5 on CUB-200 and miniImageNet). TEEN's calibrated prototype is the
    bracket; TEEN classifies by cosine, which reads only its direction, so under NORMpost l2
    these proxies are TEEN's exactly. The class mean's length ‖m_c‖ keeps the scale GEN mean
    has under the other NORMpost, so α = 0 gives GEN mean under every NORMpost. A class's
    proxy reads its own rows and the base means only: incremental (engine/incremental.py)."""
    alpha = _alpha(inputs, "teen")
    means = class_means(samples, 1, inputs)
    n_base = len(means) if inputs.base_classes is None else int(inputs.base_classes)
    if not 1 <= n_base <= len(means):
        raise ValueError(f"GEN teen: {n_base} base classes of {len(means)} classes")
    if n_base == len(means) or alpha == 0.0:
        return means
    stacked = torch.cat(means).to(torch.float64)
    unit = torch.nn.functional.normalize(stacked, dim=1)
    weights = torch.softmax(TEEN_TEMPERATURE * unit[n_base:] @ unit[:n_base].T, dim=1)
    delta = torch.nn.functional.normalize(weights @ unit[:n_base], dim=1)
    calibrated = (1.0 - alpha) * unit[n_base:] + alpha * delta
    new = stacked[n_base:].norm(dim=1, keepdim=True) * calibrated
    dtype = means[0].dtype
    return means[:n_base] + [p[None].to(dtype) for p in new]
