"""Image datasets by name, plus the paper's fixed ImageNet class selections and label mappings.

Every dataset keeps its files under `<root>/<name>/` (ImageNet: `<root>` itself or
`<root>/ImageNet`), and yields `(image, int label)` with the image as PIL (grayscale sets stay
'L'; the extractor repeats them to 3 channels before the backbone transform). Besides registry
names, a source may be a mapping of one source kind (`SOURCE_KINDS`: {"image_folder": spec}).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torchvision.datasets as tvd
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

from imprint.data.download import extract_member, fetch_file, staged_download
from imprint.data.hf_datasets import build_hf
from imprint.data.image_folders import build_image_folder
from imprint.data.selections import (  # noqa: F401  (re-exported: the paper's selections)
    COMBIDIGITS,
    combidigits_mapping,
    imagenet_class_selections,
)

SPLITS = ("train", "test")

# The torchvision-format MNIST-M archives (each a .tar.gz holding one mnist_m_<split>.pt with
# uint8 images [N, 28, 28, 3] and labels [N]) of github.com/liyxi/mnist-m, release "data".
# The md5 sums are those of the archives as used by the reference code and other public users.
MNISTM_RESOURCES = {
    "train": (
        "https://github.com/liyxi/mnist-m/releases/download/data/mnist_m_train.pt.tar.gz",
        "191ed53db9933bd85cc9700558847391",
    ),
    "test": (
        "https://github.com/liyxi/mnist-m/releases/download/data/mnist_m_test.pt.tar.gz",
        "e11cb4d7fff76d7ec588b1134907db59",
    ),
}

# The offline `digits` set: a stratified split of scikit-learn's bundled 8x8 digits.
DIGITS_TEST_FRACTION = 1 / 3
DIGITS_SEED = 0


def build_dataset(
    name: str | Mapping,
    root: str | os.PathLike,
    split: str = "train",
    download: bool = False,
    classes: Sequence[int] | None = None,
) -> Dataset:
    """The `split` ('train' or 'test') of dataset `name`, optionally only the given labels.

    `name`: a registry name, or a mapping of one source kind to its spec (`{"image_folder":
    {"train": DIR, "test": DIR}}`; `root` and `download` do not apply to it). `classes` keeps
    only samples whose label is listed; labels keep their original values. For ImageNet only
    the listed class folders are read at all.
    """
    if isinstance(name, Mapping):
        return _source_kind(name, split, classes)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; known datasets: {sorted(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}' for {name}; known splits: {list(SPLITS)}")
    classes = None if classes is None else [int(c) for c in classes]
    return DATASETS[name](Path(root), split, download, classes)


def _source_kind(source: Mapping, split: str, classes: Sequence[int] | None) -> Dataset:
    """A source given as {kind: spec} (plus an optional "name", the dataset's, for messages)."""
    kinds = [k for k in source if k in SOURCE_KINDS]
    if len(kinds) != 1 or set(source) - {kinds[0], "name"}:
        raise ValueError(
            f"a source mapping needs exactly one of {sorted(SOURCE_KINDS)} (and optionally "
            f"'name'), got {sorted(source)}"
        )
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}'; known splits: {list(SPLITS)}")
    classes = None if classes is None else [int(c) for c in classes]
    where = f"datasets.{source['name']}.{kinds[0]}" if "name" in source else kinds[0]
    return SOURCE_KINDS[kinds[0]](source[kinds[0]], split, classes, where)


def _base(dataset: Dataset) -> Dataset:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def dataset_class_names(dataset: Dataset) -> list[str] | None:
    """The class names indexed by label (folder names, torchvision's `classes`), or None."""
    names = getattr(_base(dataset), "classes", None)
    return None if names is None else [str(n) for n in names]


def skipped_images(dataset: Dataset) -> list[str]:
    """The unreadable image files a dataset left out when it indexed its files."""
    return [str(p) for p in getattr(_base(dataset), "skipped", [])]


def dataset_targets(dataset: Dataset) -> np.ndarray:
    """The labels of a dataset as int64 [N], read from its label attribute where it has one."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    for attr in ("targets", "labels"):  # torchvision uses both (SVHN: labels)
        if hasattr(dataset, attr):
            values = getattr(dataset, attr)
            if isinstance(values, torch.Tensor):
                values = values.numpy()
            return np.asarray(values, dtype=np.int64)
    return np.asarray([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def image_array(dataset: Dataset) -> torch.Tensor | None:
    """All images of a small-image dataset as one uint8 tensor [N, C, H, W], in dataset order.

    Exactly the pixels its __getitem__ would turn into PIL images, for the batched extraction
    path (decode nothing, resize on the GPU). None where images are files or differ in size.
    """
    if isinstance(dataset, Subset):
        base = image_array(dataset.dataset)
        return None if base is None else base[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, ArrayImages):
        data = dataset.images
    elif isinstance(dataset, (tvd.MNIST, tvd.USPS)):  # FashionMNIST is an MNIST
        data = dataset.data  # [N, H, W]
    elif isinstance(dataset, (tvd.CIFAR10, MNISTM)):
        data = dataset.data  # [N, H, W, 3]
    elif isinstance(dataset, tvd.SVHN):
        return torch.as_tensor(dataset.data)  # already [N, 3, H, W]
    else:
        return None
    data = torch.as_tensor(np.asarray(data))
    if data.dtype != torch.uint8:
        return None
    return data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)


def _label_filter(builder: Callable) -> Callable:
    """Wrap a builder that has no native class filter with a Subset over the wanted labels."""

    def build(root: Path, split: str, download: bool, classes: list[int] | None) -> Dataset:
        dataset = builder(root, split, download)
        if classes is None:
            return dataset
        keep = np.flatnonzero(np.isin(dataset_targets(dataset), classes))
        return Subset(dataset, keep.tolist())

    return build


# --- torchvision datasets -----------------------------------------------------------------------


def _torchvision(name: str, cls: type, own_folder: bool, split_arg: str) -> Callable:
    """A builder for a torchvision dataset class.

    own_folder: the class already nests its files under `<root>/<ClassName>/` (MNIST family),
    so it gets `<root>`; the others get `<root>/<name>`. split_arg: 'train' (bool) or 'split'.
    """

    def make(base: Path, split: str, download: bool) -> Dataset:
        kwargs = {"train": split == "train"} if split_arg == "train" else {"split": split}
        return cls(str(base if own_folder else base / name), download=download, **kwargs)

    def build(root: Path, split: str, download: bool) -> Dataset:
        try:
            return make(root, split, False)
        except (RuntimeError, OSError) as err:
            urls = _torchvision_urls(cls, split)
            # Where torchvision looks for downloaded files (MNIST family: a raw/ subfolder).
            manual = root / name / "raw" if own_folder else root / name
            if not download:
                raise RuntimeError(
                    f"{name} ({split}) is not under {root / name}: {err}. Run with download "
                    f"enabled, or put the files from {', '.join(urls)} into {manual} by hand "
                    "and run with download enabled (it then checks and unpacks them offline)."
                ) from err
            staged_download(
                name, root, lambda scratch: make(scratch, split, True), urls, manual_dir=manual
            )
        return make(root, split, False)

    return _label_filter(build)


def _torchvision_urls(cls: type, split: str) -> list[str]:
    # Read at call time from the class attributes, so they follow any override.
    if hasattr(cls, "mirrors"):
        return [m + f for f, _ in cls.resources for m in cls.mirrors]
    if hasattr(cls, "split_list"):
        return [cls.split_list[split][0]]
    return [cls.url]


# --- MNIST-M ------------------------------------------------------------------------------------


class MNISTM(Dataset):
    """One split of MNIST-M read from its torchvision-format .pt file."""

    def __init__(self, file: str | os.PathLike):
        data, targets = torch.load(file, map_location="cpu", weights_only=True)
        if data.dtype != torch.uint8 or data.ndim != 4 or data.shape[-1] != 3:
            raise RuntimeError(
                f"{file}: expected uint8 images [N, H, W, 3], got {data.dtype} {tuple(data.shape)}"
            )
        self.data = data
        self.targets = torch.as_tensor(targets).long()
        if len(self.targets) != len(self.data):
            raise RuntimeError(f"{file}: {len(self.data)} images but {len(self.targets)} labels")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.data[index].numpy()), int(self.targets[index])


def _mnist_m(root: Path, split: str, download: bool) -> Dataset:
    folder = root / "MNIST-M"
    pt = folder / f"mnist_m_{split}.pt"
    if not pt.is_file():
        url, md5 = MNISTM_RESOURCES[split]
        archive = folder / url.rsplit("/", 1)[1]
        manual = (
            f"download {url} (md5 {md5}) by hand into {folder} and run with download enabled "
            f"(a file with the right md5 is not fetched again), or extract {pt.name} from it there"
        )
        if not download:
            raise RuntimeError(f"MNIST-M ({split}) is not at {pt}; run with download, or {manual}")
        try:
            fetch_file(url, archive, md5)
            extract_member(archive, pt.name, pt)
        except RuntimeError as err:
            raise RuntimeError(
                f"could not get MNIST-M ({split}): {err}. Retry, or {manual}"
            ) from err
    return MNISTM(pt)


# --- ImageNet (local ImageFolder) ---------------------------------------------------------------


class ImageFiles(Dataset):
    """A list of (image file, label) pairs, loaded as RGB PIL images (`classes`: the names)."""

    def __init__(self, samples: list[tuple[Path, int]], classes: list[str] | None = None):
        self.samples = samples
        self.classes = classes
        self.targets = np.asarray([label for _, label in samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        path, label = self.samples[index]
        return default_loader(str(path)), label


def imagenet1k_wnids() -> list[str]:
    """The 1000 ImageNet-1k synset ids in class-id order (sorted, as ILSVRC2012 numbers them)."""
    text = resources.files("imprint.data").joinpath("imagenet1k_wnids.txt").read_text()
    return text.split()


def _imagenet(root: Path, split: str, download: bool, classes: list[int] | None) -> Dataset:
    layout = (
        "ImageNet is read from a local ImageFolder tree <root>/train/<wnid>/*.JPEG and "
        "<root>/val/<wnid>/*.JPEG (get ILSVRC2012 from image-net.org; sort val into wnid folders); "
        "it is never downloaded"
    )
    base = next((b for b in (root, root / "ImageNet") if (b / "train").is_dir()), None)
    if base is None:
        raise FileNotFoundError(f"no ImageNet train folder at {root / 'train'}. {layout}")
    # Class ids are ImageNet-1k's (positions in its sorted list of 1000 wnids) whichever
    # folders the tree holds, so a tree with only the paper's 145 classes, or one missing a
    # folder, labels every class as the full set would.
    present = sorted(d.name for d in (base / "train").iterdir() if d.is_dir())
    standard = imagenet1k_wnids()
    ids = {w: c for c, w in enumerate(standard)}
    known = [w for w in present if w in ids]
    if known:
        wnids, available = standard, [ids[w] for w in known]
        if len(known) < len(present):
            warnings.warn(
                f"{base / 'train'}: ignoring folders that are not ImageNet-1k wnids "
                f"{sorted(set(present) - set(known))[:5]}",
                stacklevel=3,
            )
    else:  # an ImageNet-like tree of other classes
        wnids, available = present, list(range(len(present)))
        warnings.warn(
            f"{base / 'train'} holds no ImageNet-1k wnid folders (e.g. {present[:3]}): class "
            "ids are positions in its sorted list of folders",
            stacklevel=3,
        )
    split_dir = base / ("train" if split == "train" else "val")
    if not split_dir.is_dir():
        raise FileNotFoundError(f"no ImageNet {split_dir.name} folder at {split_dir}. {layout}")
    wanted = available if classes is None else sorted(set(classes))
    bad = [c for c in wanted if not 0 <= c < len(wnids)]
    if bad:
        raise ValueError(f"ImageNet class ids {bad} out of range 0..{len(wnids) - 1}")
    samples: list[tuple[Path, int]] = []
    for c in wanted:
        folder = split_dir / wnids[c]
        if not folder.is_dir():
            raise FileNotFoundError(
                f"ImageNet class {c} ({wnids[c]}) has no folder {folder}; the tree needs a "
                "train and a val folder for every configured class"
            )
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        samples.extend((p, c) for p in files)
    return ImageFiles(samples, classes=list(wnids))


# --- digits (offline) ---------------------------------------------------------------------------


class ArrayImages(Dataset):
    """In-memory uint8 grayscale images [N, H, W] with labels, served as PIL 'L' images."""

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        self.images = images
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[index]), int(self.targets[index])


def _digits(root: Path, split: str, download: bool) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    # Pixel values are 0..16 counts; scale to the 0..255 range images normally have.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    train_idx, test_idx = train_test_split(
        np.arange(len(images)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=bunch.target,
        random_state=DIGITS_SEED,
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    return ArrayImages(images[idx], bunch.target[idx])


DATASETS: dict[str, Callable[[Path, str, bool, list[int] | None], Dataset]] = {
    "MNIST": _torchvision("MNIST", tvd.MNIST, own_folder=True, split_arg="train"),
    "FashionMNIST": _torchvision(
        "FashionMNIST", tvd.FashionMNIST, own_folder=True, split_arg="train"
    ),
    "CIFAR10": _torchvision("CIFAR10", tvd.CIFAR10, own_folder=False, split_arg="train"),
    # CIFAR-100's 100 fine labels (the few-shot class-incremental protocol's dataset).
    "CIFAR100": _torchvision("CIFAR100", tvd.CIFAR100, own_folder=False, split_arg="train"),
    "SVHN": _torchvision("SVHN", tvd.SVHN, own_folder=False, split_arg="split"),
    "USPS": _torchvision("USPS", tvd.USPS, own_folder=False, split_arg="train"),
    "MNIST-M": _label_filter(_mnist_m),
    "ImageNet": _imagenet,
    "digits": _label_filter(_digits),
}

# Sources given by a mapping instead of a registry name:
# kind -> builder(spec, split, classes, where the spec sits in the config).
SOURCE_KINDS: dict[str, Callable[[Mapping, str, list[int] | None, str], Dataset]] = {
    "image_folder": build_image_folder,
    "hf": build_hf,  # needs the optional `datasets` library, imported when used
}
