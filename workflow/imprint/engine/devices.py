"""Where tensors go: the one rule every stage shares."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; None means CUDA when available, else the CPU."""
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"device '{device}': not a torch device; allowed: cpu, cuda, cuda:N"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device '{device}': no CUDA device is available here (use cpu)")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
