"""The form of `backbones.<name>.layers` entries, torch-free so that planning checks them.

An entry is `<module name>` or `<module name>:<pool>`; data/layers.py hooks the modules and
pools their outputs (its docstring says what each pool computes).
"""

from __future__ import annotations

# How one module's output becomes one vector per image (data/layers.py computes them).
LAYER_POOLS: dict[str, str] = {
    "cls": "token 0 of a [B, N, D] output",
    "mean": "mean of the patch tokens of [B, N, D] (the class and register tokens excluded)",
    "cls+mean": "cls and mean concatenated",
    "spatial_mean": "mean over H, W of a [B, C, H, W] output",
    "flatten": "the output flattened",
}
# No pool given: chosen by the output's shape ([B, C, H, W] spatial_mean, [B, N, D] cls,
# [B, D] as is); the pool it resolved to is recorded in meta.json.
AUTO = "auto"


def parse_layer(entry: str) -> tuple[str, str]:
    """(module name, pool) of one `<module name>[:<pool>]` entry; AUTO where no pool is given.
    A ValueError names the entry and the allowed pools."""
    if not isinstance(entry, str):
        raise ValueError(f"{entry!r} is not a string '<module name>[:<pool>]'")
    # rpartition: the pool is after the last colon (module names have none).
    module, colon, pool = entry.strip().rpartition(":")
    if not colon:
        module, pool = pool, AUTO
    module, pool = module.strip(), pool.strip()
    if not module:
        raise ValueError(f"{entry!r} names no module (the form is '<module name>[:<pool>]')")
    if pool not in (*LAYER_POOLS, AUTO):
        raise ValueError(
            f"{entry!r}: unknown pool '{pool}' (allowed: {', '.join(LAYER_POOLS)}; none or "
            f"'{AUTO}' picks one by the output's shape)"
        )
    return module, pool


def parse_layers(entries) -> list[tuple[str, str]]:
    """[(module name, pool), ...] of a `layers:` list, in its order; a ValueError names the
    entry (`layers[i]`), its value and the allowed pools."""
    if isinstance(entries, str) or not entries:
        raise ValueError(
            f"layers: expected a non-empty list of '<module name>[:<pool>]', got {entries!r}"
        )
    parsed = []
    for i, entry in enumerate(entries):
        try:
            parsed.append(parse_layer(entry))
        except ValueError as err:
            raise ValueError(f"layers[{i}]: {err}") from None
    if len(set(parsed)) < len(parsed):
        raise ValueError(f"layers: an entry is listed twice in {list(entries)}")
    return parsed
