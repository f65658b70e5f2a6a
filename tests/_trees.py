"""Input trees the workflow tests (and tests/results_snapshot.py) put under a working directory."""

import random
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def digits_npz(folder: Path) -> dict:
    """Digits as someone's float64 embeddings in folder/{train,test}.npz: even rows train, odd
    rows test, all 10 classes; returns {split: (x, y)}."""
    x, y = load_digits(return_X_y=True)
    split = {"train": (x[::2], y[::2]), "test": (x[1::2], y[1::2])}
    folder.mkdir(parents=True, exist_ok=True)
    for name, (xs, ys) in split.items():
        np.savez(folder / f"{name}.npz", embeddings=xs, labels=ys)
    return split


def paper_imagenet_classes() -> dict:
    """The paper's ImageNet class draws, recomputed from the reference's seeds (SPEC §3):
    imagenet50 (seed 42), the remapping pool (seed 420, shuffled for variation 0)."""
    random.seed(42)
    fifty = random.sample(range(1000), 50)
    random.seed(420)
    hundred = random.sample(range(1000), 100)
    random.shuffle(hundred)  # variation 0 of the remappings
    return {
        "map1-0": {c: j for j in range(10) for c in hundred[10 * j : 10 * j + 1]},
        "map10-0": {c: j for j in range(10) for c in hundred[10 * j : 10 * j + 10]},
        "imagenet50-0": {c: i for i, c in enumerate(fifty[:10])},
        "classes": sorted(set(fifty) | set(hundred)),
    }


def imagenet_tree(root: Path) -> list[int]:
    """data/ImageNet/{train,val}/<wnid>/*.JPEG under root for the paper's 145 classes and one
    class nobody reads: two 16 x 16 images per class in train, one in val, each class its own
    colour. Returns the 145 classes."""
    from imprint.data.datasets import imagenet1k_wnids

    paper_classes = paper_imagenet_classes()["classes"]
    wnids = imagenet1k_wnids()
    unused = next(c for c in range(1000) if c not in paper_classes)
    rng = np.random.default_rng(0)
    for c in [*paper_classes, unused]:
        colour = rng.uniform(0, 255, 3)
        for split, n in (("train", 2), ("val", 1)):
            folder = root / "data/ImageNet" / split / wnids[c]
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                pixels = np.clip(colour + rng.normal(0, 8, (16, 16, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{wnids[c]}_{k}.JPEG")
    return paper_classes


def digit_image_folder(root: Path, classes: list[str], per_class: int) -> None:
    """scikit-learn's digits as 32 px grey PNGs in class folders, root/<classes[d]>/<i>.png for
    digit d, `per_class` images each."""
    x, y = load_digits(return_X_y=True)
    for digit, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i, row in enumerate(x[y == digit][:per_class]):
            image = Image.fromarray((row.reshape(8, 8) * 255 / 16).astype(np.uint8))
            image.resize((32, 32), Image.NEAREST).save(folder / f"{i:03d}.png")


def tiny_vit(folder: Path):
    """A two-layer ViT of width 32 on 32 px images and its image processor, written with
    save_pretrained (a Hugging Face model in a local folder, at a seeded random init); returns
    its config."""
    import torch
    import transformers

    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.ViTModel(config)
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return config


def tiny_clip(folder: Path):
    """A two-layer CLIP of width 32 (image and text towers) on 32 px images, its image
    processor and a character-level CLIP tokenizer (no merges: every byte and byte + "</w>" is
    a token), written with save_pretrained at a seeded random init; returns the model."""
    import json

    import torch
    import transformers
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = {tok: i for i, tok in enumerate([*chars, *(c + "</w>" for c in chars)])}
    vocab |= {"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(
        folder / "vocab.json", folder / "merges.txt", model_max_length=77
    )
    tower = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    tower |= {"intermediate_size": 64}
    config = transformers.CLIPConfig(
        text_config={**tower, "vocab_size": len(vocab), "max_position_embeddings": 77},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    size = {"shortest_edge": 32}
    transformers.CLIPImageProcessor(
        size=size, crop_size={"height": 32, "width": 32}
    ).save_pretrained(folder)
    return model


def tiny_siglip(folder: Path):
    """A two-layer SigLIP of width 32 on 32 px images, its image processor and a word-level
    tokenizer (16 positions), written with save_pretrained at a seeded random init; returns the
    model and the tokenizer."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "a photo of the cat dog d0 d1 d2 d3 itap my art bad".split()
    vocab = {token: i for i, token in enumerate(["<pad>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", model_max_length=16
    )
    tower = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    tower |= {"intermediate_size": 64}
    config = transformers.SiglipConfig(
        text_config={**tower, "vocab_size": len(vocab), "max_position_embeddings": 16},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.SiglipModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformers.SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return model, tokenizer
