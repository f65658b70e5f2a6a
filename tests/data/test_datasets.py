"""Dataset registry, real downloads from a local HTTP server, ImageNet folders, fixed selections."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import random
import socket
import struct
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image
from torch.utils.data import Subset

from imprint.data import datasets as ds
from imprint.data.datasets import (
    MNISTM,
    build_dataset,
    combidigits_mapping,
    dataset_targets,
    image_array,
    imagenet1k_wnids,
    imagenet_class_selections,
)
from imprint.data.download import fetch_file


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*")) if path.exists() else []


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve tmp_path/'www' over HTTP on 127.0.0.1; yields (base URL, served directory)."""
    # A proxy configured in the environment must not intercept the local server.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(www))
    )
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", www
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_url():
    """A URL on a local port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --- registry ---------------------------------------------------------------------------------


def test_unknown_name_and_split_list_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="known datasets.*MNIST"):
        build_dataset("MNIST-X", tmp_path, "train")
    with pytest.raises(ValueError, match=r"known splits: \['train', 'test'\]"):
        build_dataset("digits", tmp_path, "val")


# --- MNIST through torchvision's own downloader -------------------------------------------------


def write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST idx-ubyte file (uint8), gzipped."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(
        struct.pack(">I", n) for n in array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


@pytest.fixture
def tiny_mnist(server, monkeypatch):
    """A 20/10-image MNIST on the local server; torchvision's MNIST class points at it."""
    base, www = server
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(20) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(10)[::-1],
    }
    for name, array in arrays.items():
        write_idx(www / name, array)
    monkeypatch.setattr(tvd.MNIST, "mirrors", [base])
    monkeypatch.setattr(tvd.MNIST, "resources", [(n, md5(www / n)) for n in arrays])
    return arrays


def test_mnist_downloads_and_loads(tmp_path, tiny_mnist, dead_url, monkeypatch):
    root = tmp_path / "data"
    train = build_dataset("MNIST", root, "train", download=True)
    test = build_dataset("MNIST", root, "test", download=True)
    assert len(train) == 20 and len(test) == 10
    image, label = train[3]
    assert image.mode == "L" and image.size == (28, 28)
    np.testing.assert_array_equal(np.asarray(image), tiny_mnist["train-images-idx3-ubyte.gz"][3])
    assert label == 3
    np.testing.assert_array_equal(dataset_targets(test), np.arange(10)[::-1])
    # Everything under <root>/MNIST, no scratch directory left; later runs need no network.
    assert [p.name for p in root.iterdir()] == ["MNIST"]
    monkeypatch.setattr(tvd.MNIST, "mirrors", [dead_url])
    assert len(build_dataset("MNIST", root, "train", download=False, classes=[1, 2])) == 4


def test_mnist_missing_without_download(tmp_path, tiny_mnist):
    with pytest.raises(RuntimeError, match="download"):
        build_dataset("MNIST", tmp_path / "data", "train", download=False)


def test_mnist_checksum_mismatch_leaves_nothing(tmp_path, tiny_mnist, monkeypatch):
    bad = [(name, "0" * 32) for name, _ in tvd.MNIST.resources]
    monkeypatch.setattr(tvd.MNIST, "resources", bad)
    root = tmp_path / "data"
    with pytest.raises(RuntimeError) as info:
        build_dataset("MNIST", root, "train", download=True)
    message = str(info.value)
    assert "MNIST" in message and tvd.MNIST.mirrors[0] + bad[0][0] in message
    assert "by hand into" in message
    assert files_under(root) == []


def test_mnist_dead_server_leaves_nothing(tmp_path, tiny_mnist, dead_url, monkeypatch):
    monkeypatch.setattr(tvd.MNIST, "mirrors", [dead_url])
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match=f"could not download MNIST from {dead_url}"):
        build_dataset("MNIST", root, "test", download=True)
    assert files_under(root) == []


def test_mnist_files_placed_by_hand_need_no_network(
    tmp_path, tiny_mnist, server, dead_url, monkeypatch
):
    _, www = server
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in tiny_mnist:
        (raw / name).write_bytes((www / name).read_bytes())
    monkeypatch.setattr(tvd.MNIST, "mirrors", [dead_url])
    assert len(build_dataset("MNIST", tmp_path / "data", "test", download=True)) == 10


# --- MNIST-M through fetch_file -----------------------------------------------------------------


@pytest.fixture
def tiny_mnist_m(server, monkeypatch):
    """A 12-image MNIST-M train archive in the published format, on the local server."""
    base, www = server
    gen = torch.Generator().manual_seed(0)
    data = torch.randint(0, 256, (12, 28, 28, 3), dtype=torch.uint8, generator=gen)
    targets = torch.arange(12) % 10
    buffer = io.BytesIO()
    torch.save((data, targets), buffer)
    archive = www / "mnist_m_train.pt.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("mnist_m_train.pt")
        info.size = buffer.getbuffer().nbytes
        buffer.seek(0)
        tar.addfile(info, buffer)
    url = base + archive.name
    monkeypatch.setitem(ds.MNISTM_RESOURCES, "train", (url, md5(archive)))
    return url, data, targets


def test_mnist_m_downloads_and_loads(tmp_path, tiny_mnist_m):
    _, data, targets = tiny_mnist_m
    root = tmp_path / "data"
    train = build_dataset("MNIST-M", root, "train", download=True)
    assert len(train) == 12
    image, label = train[5]
    assert image.mode == "RGB" and image.size == (28, 28) and label == 5
    np.testing.assert_array_equal(np.asarray(image), data[5].numpy())
    assert sorted(p.name for p in files_under(root)) == [
        "MNIST-M",
        "mnist_m_train.pt",
        "mnist_m_train.pt.tar.gz",
    ]
    subset = build_dataset("MNIST-M", root, "train", classes=[0, 1])
    np.testing.assert_array_equal(dataset_targets(subset), [0, 1, 0, 1])


def test_mnist_m_archive_placed_by_hand_needs_no_network(tmp_path, tiny_mnist_m, server):
    url, data, _ = tiny_mnist_m
    _, www = server
    folder = tmp_path / "data" / "MNIST-M"
    folder.mkdir(parents=True)
    (folder / "mnist_m_train.pt.tar.gz").write_bytes((www / "mnist_m_train.pt.tar.gz").read_bytes())
    (www / "mnist_m_train.pt.tar.gz").unlink()  # the server would now answer 404
    assert len(build_dataset("MNIST-M", tmp_path / "data", "train", download=True)) == len(data)


def test_mnist_m_checksum_mismatch_names_url_and_sums(tmp_path, tiny_mnist_m, monkeypatch):
    url, _, _ = tiny_mnist_m
    good = ds.MNISTM_RESOURCES["train"][1]
    monkeypatch.setitem(ds.MNISTM_RESOURCES, "train", (url, "f" * 32))
    root = tmp_path / "data"
    with pytest.raises(RuntimeError) as info:
        build_dataset("MNIST-M", root, "train", download=True)
    message = str(info.value)
    assert url in message and "f" * 32 in message and good in message
    assert files_under(root) == [] and not root.exists()


def test_mnist_m_dead_server_and_http_error(tmp_path, tiny_mnist_m, dead_url, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for url in (dead_url + "mnist_m_train.pt.tar.gz", tiny_mnist_m[0] + ".missing"):
        monkeypatch.setitem(ds.MNISTM_RESOURCES, "train", (url, "0" * 32))
        with pytest.raises(RuntimeError, match="could not get MNIST-M") as info:
            build_dataset("MNIST-M", root, "train", download=True)
        assert url in str(info.value)
        assert files_under(root) == []


def test_mnist_m_missing_without_download(tmp_path):
    with pytest.raises(RuntimeError, match="liyxi/mnist-m"):
        build_dataset("MNIST-M", tmp_path, "test", download=False)


def test_fetch_file_keeps_a_verified_file(tmp_path, dead_url):
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"payload")
    # Already there with the right checksum: no request is made, so a dead server is fine.
    assert fetch_file(dead_url + "a.bin", dest, md5(dest)) == dest
    with pytest.raises(RuntimeError, match="failed"):
        fetch_file(dead_url + "a.bin", dest, "0" * 32)
    assert dest.read_bytes() == b"payload" and files_under(tmp_path) == [dest]


# --- ImageNet from a local folder ---------------------------------------------------------------

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]  # ImageNet-1k class ids 0..3


def image_tree(root, wnids, splits=("train", "val")):
    for split in splits:
        for c, wnid in enumerate(wnids):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for k in range(3):
                colour = (10 * c, 20 * k, 200 if split == "val" else 0)
                Image.new("RGB", (6, 5), colour).save(folder / f"{wnid}_{k}.JPEG")
    return root


@pytest.fixture
def tiny_imagenet(tmp_path):
    return image_tree(tmp_path / "ImageNet", WNIDS)


def test_imagenet1k_wnids_are_the_sorted_synsets():
    wnids = imagenet1k_wnids()
    assert len(wnids) == len(set(wnids)) == 1000 and wnids == sorted(wnids)
    assert wnids[:4] == WNIDS and wnids[-1] == "n15075141"  # toilet tissue, class 999


def test_imagenet_labels_and_class_filter(tiny_imagenet):
    train = build_dataset("ImageNet", tiny_imagenet, "train")
    np.testing.assert_array_equal(dataset_targets(train), np.repeat(np.arange(4), 3))
    val = build_dataset("ImageNet", tiny_imagenet, "test", classes=[3, 1])
    np.testing.assert_array_equal(dataset_targets(val), [1, 1, 1, 3, 3, 3])
    image, label = val[4]
    assert image.mode == "RGB" and image.size == (6, 5) and label == 3
    assert all(p.parent.name == WNIDS[c] and "val" in p.parts for p, c in val.samples)


def test_imagenet_class_ids_do_not_depend_on_which_folders_exist(tmp_path):
    # Only some classes' folders (as a tree holding just the paper's 145): ids stay ImageNet-1k's.
    wnids = imagenet1k_wnids()
    root = image_tree(tmp_path / "ImageNet", [wnids[c] for c in (1, 500, 999)])
    train = build_dataset("ImageNet", root, "train")
    np.testing.assert_array_equal(dataset_targets(train), np.repeat([1, 500, 999], 3))
    val = build_dataset("ImageNet", root, "test", classes=[500])
    assert {p.parent.name for p, _ in val.samples} == {wnids[500]}
    assert set(dataset_targets(val)) == {500}


def test_imagenet_like_trees_with_other_folder_names_fall_back_to_positions(tmp_path):
    root = image_tree(tmp_path / "ImageNet", ["cat", "dog"])
    with pytest.warns(UserWarning, match="no ImageNet-1k wnid folders"):
        data = build_dataset("ImageNet", root, "train", classes=[1])
    assert {p.parent.name for p, _ in data.samples} == {"dog"}


def test_imagenet_stray_folders_are_ignored_not_renumbering(tmp_path):
    root = image_tree(tmp_path / "ImageNet", [*WNIDS[:2], "zz_cache"])
    with pytest.warns(UserWarning, match=r"ignoring folders .*\['zz_cache'\]"):
        train = build_dataset("ImageNet", root, "train")
    np.testing.assert_array_equal(dataset_targets(train), np.repeat([0, 1], 3))


def test_imagenet_accepts_root_with_imagenet_subfolder(tiny_imagenet):
    data = build_dataset("ImageNet", tiny_imagenet.parent, "train", classes=[2])
    assert len(data) == 3


def test_imagenet_missing_folders_are_clear_errors(tmp_path, tiny_imagenet):
    with pytest.raises(FileNotFoundError, match="no ImageNet train folder"):
        build_dataset("ImageNet", tmp_path / "nowhere", "train", download=True)
    for f in (tiny_imagenet / "val" / WNIDS[2]).iterdir():
        f.unlink()
    (tiny_imagenet / "val" / WNIDS[2]).rmdir()
    with pytest.raises(FileNotFoundError, match=WNIDS[2]):
        build_dataset("ImageNet", tiny_imagenet, "test", classes=[0, 2])
    with pytest.raises(FileNotFoundError, match=r"class 7 \(n01514668\) has no folder"):
        build_dataset("ImageNet", tiny_imagenet, "train", classes=[7])
    with pytest.raises(ValueError, match=r"out of range 0..999"):
        build_dataset("ImageNet", tiny_imagenet, "train", classes=[1000])


# --- fixed selections ---------------------------------------------------------------------------


def test_imagenet_class_selections_match_the_module_level_random_calls():
    state = random.getstate()
    try:
        random.seed(42)
        fifty = random.sample(range(1000), 50)
        random.seed(420)
        hundred = random.sample(range(1000), 100)
        order, shuffled = list(hundred), []
        for _ in range(10):
            random.shuffle(order)
            shuffled.append(list(order))
    finally:
        random.setstate(state)
    sel = imagenet_class_selections()
    assert sel["tasks50"][0][:5] == [654, 114, 25, 759, 281]
    assert sel["classes100"][:5] == [26, 689, 800, 373, 279]
    assert sum(sel["tasks50"], []) == fifty and [len(t) for t in sel["tasks50"]] == [10] * 5
    assert sel["classes100"] == hundred
    remaps = sel["remappings"]
    assert list(remaps) == [f"map{i}-{j}" for i in range(1, 11) for j in range(10)]
    for i in range(1, 11):
        for j in range(10):
            mapping = remaps[f"map{i}-{j}"]
            assert sorted(set(mapping.values())) == list(range(10))
            assert len(mapping) == 10 * i and set(mapping) <= set(hundred)
            assert all(mapping[shuffled[j][10 * c + t]] == c for c in range(10) for t in range(i))
    assert imagenet_class_selections() == sel


def test_combidigits_mapping():
    mapping = combidigits_mapping()
    assert len(mapping) == 40 and mapping[0] == 0 and mapping[13] == 3 and mapping[39] == 9
    assert ds.COMBIDIGITS == ("MNIST", "MNIST-M", "USPS", "SVHN")


# --- digits (offline) ---------------------------------------------------------------------------


def test_digits_split_sizes_labels_and_determinism(tmp_path):
    train = build_dataset("digits", tmp_path, "train")
    test = build_dataset("digits", tmp_path, "test")
    assert (len(train), len(test)) == (1198, 599)
    for data in (train, test):
        counts = np.bincount(dataset_targets(data), minlength=10)
        assert counts.size == 10 and counts.min() > 0
    image, label = train[0]
    assert image.mode == "L" and image.size == (8, 8) and 0 <= label <= 9
    assert np.asarray(train.images).max() == 255
    again = build_dataset("digits", tmp_path, "train")
    np.testing.assert_array_equal(train.images, again.images)
    np.testing.assert_array_equal(train.targets, again.targets)
    subset = build_dataset("digits", tmp_path, "test", classes=[0, 9])
    assert set(dataset_targets(subset)) == {0, 9}


def test_planning_knows_every_registry_dataset_and_its_classes(tmp_path):
    from imprint.data.selections import SOURCE_CLASSES
    from imprint.io import read_yaml

    schema = read_yaml(Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml")
    sources = schema["properties"]["datasets"]["additionalProperties"]["properties"]["sources"]
    assert set(SOURCE_CLASSES) == set(ds.DATASETS) == set(sources["items"]["enum"])
    digits = build_dataset("digits", tmp_path, "train")
    assert SOURCE_CLASSES["digits"] == len(np.unique(dataset_targets(digits)))
    assert [SOURCE_CLASSES[n] for n in ("MNIST", "FashionMNIST")] == [
        len(tvd.MNIST.classes),
        len(tvd.FashionMNIST.classes),
    ]


# --- raw image arrays for batched extraction ----------------------------------------------------


def _bare(cls, **attrs):
    # A torchvision dataset object without its files: only the attributes __getitem__ reads.
    obj = cls.__new__(cls)
    obj.transform = obj.target_transform = None
    obj.__dict__.update(attrs)
    return obj


def test_image_array_is_what_getitem_shows(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    labels = [3, 1, 4, 1, 5]
    mnist_m = tmp_path / "mnist_m_train.pt"
    torch.save((torch.from_numpy(rgb[:, :28, :28].copy()), torch.tensor(labels)), mnist_m)
    datasets = {
        "MNIST": _bare(tvd.MNIST, data=torch.from_numpy(gray), targets=torch.tensor(labels)),
        "FashionMNIST": _bare(
            tvd.FashionMNIST, data=torch.from_numpy(gray), targets=torch.tensor(labels)
        ),
        "USPS": _bare(tvd.USPS, data=gray[:, :16, :16], targets=labels),
        "CIFAR10": _bare(tvd.CIFAR10, data=rgb, targets=labels),
        "SVHN": _bare(tvd.SVHN, data=rgb.transpose(0, 3, 1, 2).copy(), labels=np.array(labels)),
        "MNIST-M": MNISTM(mnist_m),
        "digits": build_dataset("digits", tmp_path, "test"),
    }
    for name, full in datasets.items():
        subset = Subset(full, [4, 0, 2])  # order kept, as extraction needs
        array = image_array(subset)
        assert array.dtype == torch.uint8 and array.ndim == 4, name
        for i in range(3):
            image = np.asarray(subset[i][0])
            expected = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
            np.testing.assert_array_equal(array[i].numpy(), expected, err_msg=name)


def test_image_array_is_none_for_image_files(tiny_imagenet):
    assert image_array(build_dataset("ImageNet", tiny_imagenet, "train")) is None


# --- FashionMNIST, CIFAR-10, SVHN, USPS: torchvision's own downloaders, tiny real-format files ---


def _serve_fashion(www, base, monkeypatch, rng):
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    names += ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    images = {
        "train": rng.integers(0, 256, (20, 28, 28)),
        "test": rng.integers(0, 256, (10, 28, 28)),
    }
    labels = {"train": np.arange(20) % 10, "test": np.arange(10)}
    for name, array in zip(
        names, [images["train"], labels["train"], images["test"], labels["test"]]
    ):
        write_idx(www / name, array)
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", [base])
    monkeypatch.setattr(tvd.FashionMNIST, "resources", [(n, md5(www / n)) for n in names])
    return (
        images,
        labels,
        lambda bad: monkeypatch.setattr(tvd.FashionMNIST, "resources", [(n, bad) for n in names]),
    )


def _serve_cifar10(www, base, monkeypatch, rng):
    """cifar-10-python.tar.gz: pickled batches of uint8 rows [N, 3*32*32] (CHW) and labels."""
    import pickle

    folder = www / "build" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = {"train": [], "test": []}
    labels = {"train": [], "test": []}
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in batches:
        split = "test" if name == "test_batch" else "train"
        chw = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 10, 4).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": chw.reshape(4, -1), "labels": y}, fh)
        images[split].append(chw.transpose(0, 2, 3, 1))
        labels[split] += y
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    with tarfile.open(www / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    sums = {name: md5(folder / name) for name in [*batches, "batches.meta"]}
    monkeypatch.setattr(tvd.CIFAR10, "url", base + "cifar-10-python.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(www / "cifar-10-python.tar.gz"))
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[b, sums[b]] for b in batches[:5]])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", sums["test_batch"]]])
    monkeypatch.setattr(
        tvd.CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": sums["batches.meta"]},
    )
    images = {s: np.concatenate(v) for s, v in images.items()}
    return images, labels, lambda bad: monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", bad)


def _serve_cifar100(www, base, monkeypatch, rng):
    """cifar-100-python.tar.gz: pickled 'train' and 'test' with uint8 rows and fine labels."""
    import pickle

    folder = www / "build100" / "cifar-100-python"
    folder.mkdir(parents=True)
    images, labels = {}, {}
    for split, n in (("train", 6), ("test", 3)):
        chw = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        y = rng.integers(0, 100, n).tolist()
        with open(folder / split, "wb") as fh:
            pickle.dump({"data": chw.reshape(n, -1), "fine_labels": y}, fh)
        images[split], labels[split] = chw.transpose(0, 2, 3, 1), y
    with open(folder / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, fh)
    with tarfile.open(www / "cifar-100-python.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    sums = {name: md5(folder / name) for name in ("train", "test", "meta")}
    cls = tvd.CIFAR100
    monkeypatch.setattr(cls, "url", base + "cifar-100-python.tar.gz")
    monkeypatch.setattr(cls, "tgz_md5", md5(www / "cifar-100-python.tar.gz"))
    monkeypatch.setattr(cls, "train_list", [["train", sums["train"]]])
    monkeypatch.setattr(cls, "test_list", [["test", sums["test"]]])
    monkeypatch.setattr(
        cls, "meta", {"filename": "meta", "key": "fine_label_names", "md5": sums["meta"]}
    )
    return images, labels, lambda bad: monkeypatch.setattr(cls, "tgz_md5", bad)


def _patch_split_list(monkeypatch, cls, split_list):
    """Point cls.split_list (SVHN, USPS: split -> [url, file, md5]) at the served files; returns
    a function that swaps every md5 for a wrong one."""
    monkeypatch.setattr(cls, "split_list", split_list)

    def break_checksums(bad):
        broken = {s: [url, name, bad] for s, (url, name, _) in split_list.items()}
        monkeypatch.setattr(cls, "split_list", broken)

    return break_checksums


def _serve_svhn(www, base, monkeypatch, rng):
    """{train,test}_32x32.mat: X [32, 32, 3, N] uint8, y [N, 1] with 10 standing for digit 0."""
    from scipy.io import savemat

    images, labels, split_list = {}, {}, {}
    for split, n in (("train", 12), ("test", 6)):
        hwc = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        y = np.arange(n) % 10
        name = f"{split}_32x32.mat"
        savemat(www / name, {"X": hwc.transpose(1, 2, 3, 0), "y": np.where(y == 0, 10, y)[:, None]})
        images[split], labels[split] = hwc, y
        split_list[split] = [base + name, name, md5(www / name)]
    return images, labels, _patch_split_list(monkeypatch, tvd.SVHN, split_list)


def _serve_usps(www, base, monkeypatch, rng):
    """usps.bz2 / usps.t.bz2: libsvm lines 'label i:value ...', labels 1..10, values in [-1, 1]."""
    import bz2

    images, labels, split_list = {}, {}, {}
    for split, name, n in (("train", "usps.bz2", 10), ("test", "usps.t.bz2", 5)):
        values = rng.integers(0, 256, (n, 256)) / 255 * 2 - 1
        y = np.arange(n) % 10
        lines = [
            f"{label + 1} " + " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row))
            for label, row in zip(y, values)
        ]
        (www / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
        # torchvision's own conversion of the stored floats to uint8 pixels.
        stored = np.asarray([[f"{v:.6f}" for v in row] for row in values], dtype=np.float32)
        images[split] = ((stored + 1) / 2 * 255).astype(np.uint8).reshape(n, 16, 16)
        labels[split] = y
        split_list[split] = [base + name, name, md5(www / name)]
    return images, labels, _patch_split_list(monkeypatch, tvd.USPS, split_list)


TINY_SERVED = {
    "FashionMNIST": _serve_fashion,
    "CIFAR10": _serve_cifar10,
    "CIFAR100": _serve_cifar100,
    "SVHN": _serve_svhn,
    "USPS": _serve_usps,
}


@pytest.mark.parametrize("name", sorted(TINY_SERVED))
def test_torchvision_downloads_load_the_served_pixels(name, tmp_path, server, dead_url):
    base, www = server
    with pytest.MonkeyPatch.context() as mp:
        images, labels, _ = TINY_SERVED[name](www, base, mp, np.random.default_rng(1))
        root = tmp_path / "data"
        for split in ("train", "test"):
            data = build_dataset(name, root, split, download=True)
            np.testing.assert_array_equal(dataset_targets(data), labels[split])
            pixels = image_array(data).numpy()
            expected = images[split]
            expected = expected[:, None] if expected.ndim == 3 else expected.transpose(0, 3, 1, 2)
            np.testing.assert_array_equal(pixels, expected)
            np.testing.assert_array_equal(np.asarray(data[1][0]), images[split][1])
        # Only the dataset's own folder is left, and it loads without the network.
        assert [p.name for p in root.iterdir()] == [name]
        subset = build_dataset(name, root, "train", download=False, classes=[1, 2])
        assert sorted(set(dataset_targets(subset).tolist())) <= [1, 2]


@pytest.mark.parametrize("name", sorted(TINY_SERVED))
def test_torchvision_checksum_mismatch_leaves_nothing(name, tmp_path, server):
    base, www = server
    with pytest.MonkeyPatch.context() as mp:
        _, _, break_checksums = TINY_SERVED[name](www, base, mp, np.random.default_rng(1))
        break_checksums("0" * 32)
        root = tmp_path / "data"
        with pytest.raises(RuntimeError, match=f"could not download {name} from {base}"):
            build_dataset(name, root, "train", download=True)
        assert files_under(root) == []
