"""Text proxies: each class's prompts encoded by a CLIP-like backbone's text tower, averaged.

As CLIP's zero-shot classifier (Radford et al., 2021): every prompt's embedding L2-normalised,
the class's mean taken and L2-normalised again. Cached as an embedding set with one row per
class (labels: the class labels), so the engine's GEN text and text_mean read them like
embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from imprint import io
from imprint.data.prompts import class_prompts


def encode_class_texts(
    encode: Callable[[list[str]], torch.Tensor],
    class_names: Sequence[str],
    templates: list[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """[C, D] float32: per class, the normalised mean of its normalised prompt embeddings."""
    prompts = [p for name in class_names for p in class_prompts(name, templates)]
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            out = encode(prompts[start : start + batch_size]).float()
            chunks.append(torch.nn.functional.normalize(out, dim=1))
    per_prompt = torch.cat(chunks).reshape(len(class_names), len(templates), -1)
    return torch.nn.functional.normalize(per_prompt.mean(dim=1), dim=1)


def text_proxies_to_file(
    backbone_name: str,
    model: str,
    class_names: dict[int, str],
    templates: list[str],
    out_path: str | os.PathLike,
    weights: str | os.PathLike | None = "default",
    image_size: int | None = None,
    pool: str | None = None,
    batch_size: int = 256,
    force: bool = False,
) -> Path:
    """Encode the prompts of every class (`class_names`: label → name) with the text tower of
    the backbone `model` and write them as an embedding set (rows in label order)."""
    from imprint.data.backbones import build_backbone
    from imprint.data.text_towers import text_encoder

    backbone = build_backbone(backbone_name, weights, image_size, model=model, pool=pool)
    encode = text_encoder(backbone[0], model)
    labels = sorted(class_names)
    names = [class_names[label] for label in labels]
    vectors = encode_class_texts(encode, names, templates, batch_size)
    meta = {
        "kind": "text proxies",
        "backbone": backbone_name,
        **backbone.meta,
        "class_names": names,
        "templates": templates,
    }
    return io.save_embeddings(
        out_path, vectors.numpy(), np.asarray(labels, dtype=np.int64), meta, force=force
    )
