"""Planning without torch: per-job settings, path templates, joined-dataset sources."""

import subprocess
import sys

import pytest

from imprint.engine.grid import GridError
from imprint.planning import paths
from imprint.planning.jobs import (
    Group,
    imported_embeddings,
    ls_lambda,
    ls_precision,
    source_embeddings,
    uses_ls,
)


def test_planning_imports_neither_torch_nor_matplotlib():
    # The workflow plans 1,120 jobs in seconds because planning never imports the engine's
    # heavy dependencies; a stray import would cost every `snakemake -n` seconds and memory.
    # Every planning module (figure kinds and dataset checks included) and the data modules
    # planning reads, in a fresh interpreter.
    code = (
        "import importlib, pkgutil, sys\n"
        "import imprint.planning\n"
        "for m in pkgutil.iter_modules(imprint.planning.__path__):\n"
        "    importlib.import_module('imprint.planning.' + m.name)\n"
        "for m in ('ls_lambda', 'selections', 'folder_layout', 'layer_names', 'prompts'):\n"
        "    importlib.import_module('imprint.data.' + m)\n"
        "assert 'imprint.planning.figure_kinds' in sys.modules\n"
        "heavy = {'torch', 'torchvision', 'matplotlib', 'sklearn', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_uses_ls_reads_inline_default_and_file_grids(tmp_path):
    (tmp_path / "g.yaml").write_text("parts:\n  - {gen: [mean]}\n  - {gen: [kls], k: [2]}\n")
    config = {
        "experiments": {
            "inline": {"grid": {"gen": ["mean", "kmeans"], "k": [3]}},
            "default_gen": {"grid": {"k": [1]}},
            "file": {"grid": str(tmp_path / "g.yaml")},
            "packaged": {"grid": "paper:fig6"},
        }
    }
    got = {e: uses_ls(config, e) for e in config["experiments"]}
    assert got == {"inline": False, "default_gen": False, "file": True, "packaged": True}
    # A missing grid file: check_config has already failed naming it, before any rule.
    config["experiments"]["missing"] = {"grid": str(tmp_path / "nope.yaml")}
    with pytest.raises(GridError, match="nope.yaml: no such grid file"):
        uses_ls(config, "missing")


def test_ls_precision_default_and_configured():
    assert ls_precision({}) == "float64"
    assert ls_precision({"engine": {}}) == "float64"
    assert ls_precision({"engine": {"ls_precision": "float32"}}) == "float32"


def test_ls_lambda_configured_or_registered():
    config = {
        "backbones": {
            "resnet50": {},
            "vit_b_16": {"ls_lambda": 0.25},
            "my_fm": {"embeddings": "emb/{dataset}/{split}.npz", "ls_lambda": 1},
            "unregistered": {"embeddings": "x/{split}.npz"},
        }
    }
    assert ls_lambda(config, "resnet50") == 1e-4  # the weight decay of its recipe (SPEC §2)
    assert ls_lambda(config, "vit_b_16") == 0.25
    assert ls_lambda(config, "my_fm") == 1.0 and isinstance(ls_lambda(config, "my_fm"), float)
    with pytest.raises(ValueError, match="no ls λ registered for backbone 'unregistered'"):
        ls_lambda(config, "unregistered")


def test_paths_are_the_templates_the_jobs_fill():
    group = Group("aggfixed", "MNIST", "resnet18", "none", "all")
    assert group.path() == "results/imprint/aggfixed/MNIST/resnet18/none/all.parquet"
    assert paths.GROUP_TABLE.format(**vars(group)) == group.path()
    assert paths.EMBEDDINGS.format(dataset="d", backbone="b", split="train") == (
        "results/embeddings/d/b/train"
    )


def test_joined_dataset_reuses_a_single_source_dataset_with_every_class():
    config = {
        "datasets": {
            "MNIST": {"sources": ["MNIST"]},
            "USPS_some": {"sources": ["USPS"], "classes": [0, 1]},
            "CombiDigits": {"sources": ["MNIST", "MNIST-M", "USPS", "SVHN"]},
        }
    }
    got = [p.format(backbone="b", split="test") for p in source_embeddings(config, "CombiDigits")]
    assert got == [
        "results/embeddings/MNIST/b/test",  # MNIST is embedded once, with every class
        "results/embeddings/sources/MNIST-M/b/test",
        "results/embeddings/sources/USPS/b/test",  # USPS_some has only two classes
        "results/embeddings/sources/SVHN/b/test",
    ]


def test_imported_embeddings_fill_dataset_and_split():
    config = {"backbones": {"fm": {"embeddings": "emb/{dataset}/{split}.npz"}, "x": {}}}
    assert imported_embeddings(config, "mnist", "fm", "train") == "emb/mnist/train.npz"
    assert imported_embeddings(config, "mnist", "x", "train") is None


def test_dataset_classes_are_known_at_planning_where_the_registry_knows_them():
    from imprint.planning.mappings import dataset_classes

    config = {
        "datasets": {
            "digits": {"sources": ["digits"]},
            "some": {"sources": ["CIFAR100"], "classes": [3, 99, 200]},
            "joined": {"sources": ["MNIST", "USPS"]},
            "imagenet": {"sources": ["ImageNet"]},
            "imagenet_some": {"sources": ["ImageNet"], "classes": [7, 5]},
            "own": {"sources": []},
        }
    }
    known = {name: dataset_classes(config, name) for name in config["datasets"]}
    assert known == {
        "digits": list(range(10)),
        "some": [3, 99],  # CIFAR-100 has no class 200
        "joined": list(range(20)),  # USPS's labels offset by 10
        "imagenet": None,  # its tree decides
        "imagenet_some": [5, 7],
        "own": None,  # only backbones that bring their own files read it
    }
