"""GEN ls's ridge λ per registered backbone: the weight decay of its training recipe (SPEC §2).

Torch-free, so that planning resolves λ for a job without building the backbone;
data/backbones.py registers the same names (a test holds the two lists together).
"""

from __future__ import annotations

LS_LAMBDA: dict[str, float] = {
    # The paper's four backbones.
    "resnet18": 1e-4,
    "resnet50": 1e-4,
    "vit_b_16": 0.1,
    "swin_b": 0.05,
    # Offline entries for the quickstart and tests: their values are our choice.
    "pixels": 1e-3,
    "pixels_random_relu": 1e-3,
    "resnet18_random": 1e-4,
    # Optional timm entries: the paper's rule, not validated by it.
    "dinov2_vits14": 0.04,
    "clip_vit_b16": 0.2,
    "convnextv2_femto": 0.05,
}


def registered_ls_lambda(backbone: str) -> float:
    """The registered λ of a backbone, or an error that lists the backbones that have one."""
    if backbone not in LS_LAMBDA:
        raise ValueError(
            f"no ls λ registered for backbone '{backbone}' (known: {', '.join(sorted(LS_LAMBDA))}); "
            "pass it with --ls-lambda (or set backbones.<name>.ls_lambda in the config)"
        )
    return LS_LAMBDA[backbone]


def resolve_ls_lambda(given, backbone: str | None) -> float | None:
    """λ for GEN ls/kls, the one rule for the command and the workflow: `given` (the flag or
    `backbones.<name>.ls_lambda`) if set, checked; else the registered λ of `backbone`; None
    where neither names one."""
    if given is not None:
        from imprint.arguments import check_ls_lambda

        return check_ls_lambda(given)
    return None if backbone is None else registered_ls_lambda(backbone)
