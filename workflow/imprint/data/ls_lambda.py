"""GEN ls's ridge λ per registered backbone (SPEC §2), and the form of backbones by name.

Torch-free, so that planning resolves λ and checks a `model:` string without building the
backbone; data/backbones.py registers the same names (a test holds the two lists together),
data/providers.py builds the models by name.
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


# backbones.<name>.model: the providers and the form of their model strings (data/providers.py).
MODEL_FORMS: dict[str, str] = {
    "timm": "timm/<model name>",
    "torchvision": "torchvision/<model name>[/<weights enum member>]",
    "hf": "hf/<repo id or local directory>",
    "open_clip": "open_clip/<architecture>[/<pretrained tag>]",
}

# What the paper's rule asks of a backbone outside the registry.
LS_LAMBDA_RULE = "the paper's rule: λ = the weight decay the model was trained with"


def split_model(model: str) -> tuple[str, str]:
    """(provider, name) of a `<provider>/<name>` model string, checked for its form only; a
    ValueError names the allowed forms."""
    provider, _, name = str(model).partition("/")
    parts = name.split("/")
    well_formed = (
        provider in MODEL_FORMS
        and name.strip() == name
        and name != ""
        and (
            provider == "hf"
            or (provider == "timm" and ":" in name)  # timm's hf-hub:<org>/<repo> names
            or all(parts)
            and len(parts) <= (2 if provider in ("torchvision", "open_clip") else 1)
        )
    )
    if not well_formed:
        raise ValueError(f"{model!r} is not one of the forms {', '.join(MODEL_FORMS.values())}")
    return provider, name


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
