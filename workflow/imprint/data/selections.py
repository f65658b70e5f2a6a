"""The paper's fixed class selections and label maps (no torch: the workflow plans with them)."""

from __future__ import annotations

import random

# CombiDigits (paper §5.3): these datasets in this order, labels offset by 10 per dataset.
COMBIDIGITS = ("MNIST", "MNIST-M", "USPS", "SVHN")
LABEL_OFFSET = 10  # labels of the j-th source of a joined dataset are shifted by 10·j
# Classes of each registry dataset (data/datasets.py), ids 0..n-1, known to planning without
# torch (tests/data/test_datasets.py holds the two lists together). ImageNet: None, as its tree
# decides (ImageNet-1k folders are ids 0..999, a tree of other classes numbers its own).
SOURCE_CLASSES: dict[str, int | None] = {
    "digits": 10,
    "MNIST": 10,
    "FashionMNIST": 10,
    "CIFAR10": 10,
    "CIFAR100": 100,
    "SVHN": 10,
    "USPS": 10,
    "MNIST-M": 10,
    "ImageNet": None,
}


def imagenet_class_selections() -> dict:
    """The ImageNet class lists and remappings of paper §5.3, from their fixed seeds.

    Returns 'tasks50' (five 10-class tasks), 'classes100' (the 100 classes in drawn order) and
    'remappings': 'map{i}-{j}' -> {class id: label} for i in 1..10 classes merged per label and
    variation j in 0..9. Variation j's list is the previous one shuffled again (one stream).
    """
    rng = random.Random(42)
    classes50 = rng.sample(range(1000), 50)
    rng = random.Random(420)
    classes100 = rng.sample(range(1000), 100)
    order = list(classes100)
    variations = []
    for _ in range(10):
        rng.shuffle(order)
        variations.append(list(order))
    remappings = {
        f"map{i}-{j}": {variations[j][10 * c + t]: c for c in range(10) for t in range(i)}
        for i in range(1, 11)
        for j in range(10)
    }
    return {
        "tasks50": [classes50[10 * t : 10 * (t + 1)] for t in range(5)],
        "classes100": classes100,
        "remappings": remappings,
    }


def combidigits_mapping() -> dict[int, int]:
    """CombiDigits label map: digit d of the j-th dataset of COMBIDIGITS (label d + 10j) -> d."""
    return {d + LABEL_OFFSET * j: d for j in range(len(COMBIDIGITS)) for d in range(10)}
