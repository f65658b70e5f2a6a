"""open_clip backbones by name and CLIP-like text towers (open_clip; Hugging Face CLIP), at a
seeded random init, against each library's own API; text proxies against a direct computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _trees import digit_image_folder, tiny_clip, tiny_siglip, tiny_vit
from PIL import Image

from imprint.data.backbones import INIT_SEED, build_backbone
from imprint.data.prompts import class_prompts, resolve_templates, template_sets
from imprint.data.text_proxies import encode_class_texts
from imprint.data.text_towers import text_encoder

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

PROMPTS = ["a photo of a cat.", "a dog", "itap of my d3."]


def _images(n=6, size=40):
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def _seeded_open_clip(arch: str, **kwargs):
    torch.manual_seed(INIT_SEED)
    clip, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, **kwargs)
    return clip.eval(), preprocess


def test_open_clip_by_name_is_open_clip_itself():
    backbone = build_backbone("oc", None, image_size=32, model="open_clip/ViT-S-32")
    net, transform, dim = backbone
    clip, preprocess = _seeded_open_clip("ViT-S-32", force_image_size=32)
    assert repr(transform) == repr(preprocess) and dim == clip.visual.output_dim == 384
    images = _images()
    with torch.inference_mode():
        ours = net(torch.stack([transform(i) for i in images]))
        direct = clip.encode_image(torch.stack([preprocess(i) for i in images]))
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-5)
    assert backbone.meta["provider"] == "open_clip"
    assert backbone.meta["provider_version"] == open_clip.__version__


def test_a_random_init_takes_its_tags_preprocessing_and_activation():
    # laion2b's ViT-L-14 normalises with mean = std = 0.5 (not OpenAI's); OpenAI's ViT-B-32 was
    # trained with QuickGELU, laion2b's with GELU.
    tag = "laion2b_s32b_b82k"
    _, transform, _ = build_backbone("l", None, image_size=28, model=f"open_clip/ViT-L-14/{tag}")
    cfg = open_clip.get_pretrained_cfg("ViT-L-14", tag)
    normalize = transform.transforms[-1]
    assert tuple(normalize.mean) == cfg["mean"] == (0.5, 0.5, 0.5)
    assert tuple(normalize.std) == cfg["std"]
    for tag, activation in (("openai", "QuickGELU"), ("laion2b_s34b_b79k", "GELU")):
        net = build_backbone("b", None, image_size=32, model=f"open_clip/ViT-B-32/{tag}")[0]
        assert type(net.clip.visual.transformer.resblocks[0].mlp.gelu).__name__ == activation


def test_an_open_clip_state_dict_loads_into_both_towers(tmp_path):
    torch.manual_seed(123)  # other weights than the library's seeded init
    clip, _, preprocess = open_clip.create_model_and_transforms(
        "ViT-S-32", pretrained=None, force_image_size=32
    )
    clip.eval()
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    net = build_backbone("oc", tmp_path / "clip.pt", 32, model="open_clip/ViT-S-32")[0]
    x = torch.stack([preprocess(i) for i in _images(3)])
    tokens = open_clip.get_tokenizer("ViT-S-32")(PROMPTS)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), clip.encode_image(x))
        torch.testing.assert_close(
            text_encoder(net, "open_clip/ViT-S-32")(PROMPTS), clip.encode_text(tokens)
        )


def test_open_clip_names_are_checked():
    with pytest.raises(ValueError, match="no architecture 'NoSuchArch'"):
        build_backbone("x", None, model="open_clip/NoSuchArch")
    with pytest.raises(ValueError, match="no pretrained tag 'nope'.*laion2b_s34b_b79k"):
        build_backbone("x", None, model="open_clip/ViT-B-32/nope")
    with pytest.raises(ValueError, match="pretrained weights need a tag"):
        build_backbone("x", "default", model="open_clip/ViT-S-32")


def test_the_open_clip_text_tower_is_open_clips_with_its_packaged_tokenizer():
    net = build_backbone("oc", None, image_size=32, model="open_clip/ViT-S-32")[0]
    clip, _ = _seeded_open_clip("ViT-S-32", force_image_size=32)
    tokens = open_clip.get_tokenizer("ViT-S-32")(PROMPTS)
    with torch.inference_mode():
        torch.testing.assert_close(
            text_encoder(net, "open_clip/ViT-S-32")(PROMPTS), clip.encode_text(tokens)
        )


def test_class_texts_are_normalised_means_of_normalised_prompts():
    """encode_class_texts against numpy: each prompt's row over its norm, the class's mean,
    over its norm (a mean of raw rows, or no final normalisation, differs here)."""
    net = build_backbone("oc", None, image_size=32, model="open_clip/ViT-S-32")[0]
    encode = text_encoder(net, "open_clip/ViT-S-32")
    names, templates = ["aquarium_fish", "d1", "tabby cat"], resolve_templates("clip_imagenet_7")
    found = encode_class_texts(encode, names, templates, batch_size=5).numpy()
    with torch.inference_mode():
        rows = [encode(class_prompts(n, templates)).double().numpy() for n in names]
    expected = []
    for r in rows:
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        m = r.mean(axis=0)
        expected.append(m / np.linalg.norm(m))
    np.testing.assert_allclose(found, np.array(expected), rtol=1e-5, atol=1e-6)
    assert class_prompts("aquarium_fish", ["a photo of a {}."]) == ["a photo of a aquarium fish."]


def test_the_packaged_templates_are_clips_published_ones():
    from open_clip import zero_shot_metadata as published

    sets = template_sets()
    assert sets["clip_imagenet"] == [t("{}") for t in published.OPENAI_IMAGENET_TEMPLATES]
    assert len(sets["clip_imagenet"]) == 80
    assert sets["clip_imagenet_7"] == [t("{}") for t in published.SIMPLE_IMAGENET_TEMPLATES]
    with pytest.raises(ValueError, match="unknown template set 'nope'"):
        resolve_templates("nope")
    with pytest.raises(ValueError, match=r"templates\[1\].*once"):
        resolve_templates(["a {}", "no placeholder"])


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "tiny_clip"
    return folder, tiny_clip(folder)


def test_an_hf_clip_embeds_images_in_the_space_its_text_tower_shares(hf_clip):
    folder, model = hf_clip
    backbone = build_backbone("c", None, model=f"hf/{folder}")
    net, transform, dim = backbone
    assert net.pool == "projection" and dim == model.config.projection_dim
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    images = _images()
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        ours = net(torch.stack([transform(i) for i in images]))
        torch.testing.assert_close(ours, model.get_image_features(pixel_values=pixels))
        text = text_encoder(net, f"hf/{folder}")(PROMPTS)
        direct = model.get_text_features(**tokenizer(PROMPTS, padding=True, return_tensors="pt"))
        torch.testing.assert_close(text, direct)
        # pool cls reads the vision tower's class token, outside the shared space.
        cls = build_backbone("c", None, model=f"hf/{folder}", pool="cls")[0]
        torch.testing.assert_close(
            cls(pixels), model.vision_model(pixel_values=pixels).last_hidden_state[:, 0]
        )
    with pytest.raises(ValueError, match="pool 'projection'"):
        text_encoder(cls, f"hf/{folder}")


def test_an_hf_siglip_pads_its_prompts_to_the_text_towers_length(tmp_path):
    """SigLIP was trained on prompts padded to full length: the tower's 16 positions here; its
    image features are get_image_features'."""
    model, tokenizer = tiny_siglip(tmp_path / "siglip")
    net, transform, dim = build_backbone("s", None, model=f"hf/{tmp_path / 'siglip'}")
    assert net.pool == "projection" and dim == 32
    prompts = ["a photo of the cat", "dog"]
    tokens = tokenizer(prompts, padding="max_length", max_length=16, return_tensors="pt")
    assert tokens["input_ids"].shape == (2, 16)
    with torch.inference_mode():
        text = text_encoder(net, f"hf/{tmp_path / 'siglip'}")(prompts)
        direct = model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        )
        torch.testing.assert_close(text, direct)
        unpadded = tokenizer(prompts, padding=True, return_tensors="pt")
        short = model.get_text_features(
            input_ids=unpadded["input_ids"], attention_mask=unpadded["attention_mask"]
        )
        assert not torch.allclose(text, short)
        pixels = torch.stack([transform(i) for i in _images(2)])
        torch.testing.assert_close(net(pixels), model.get_image_features(pixel_values=pixels))


def test_a_timm_clip_tower_keeps_its_projection_and_gets_open_clips_text_tower():
    """timm's vit_base_patch16_clip_224.openai with pool projection: the timm model with its
    head (the image projection, 512-d) and the text tower of open_clip's ViT-B-16/openai, whose
    pretrained tag loads from the same repository (at random init here: seeded, with a
    warning that says so)."""
    import timm

    name = "vit_base_patch16_clip_224.openai"
    net, transform, dim = build_backbone("t", None, model=f"timm/{name}", pool="projection")
    assert dim == 512 and net.text_model == "ViT-B-16/openai"
    torch.manual_seed(INIT_SEED)
    ref = timm.create_model(name, pretrained=False).eval()
    x = torch.stack([transform(i) for i in _images(2)])
    clip, _ = _seeded_open_clip("ViT-B-16", force_quick_gelu=True)
    with torch.inference_mode():
        torch.testing.assert_close(net(x), ref(x))
        with pytest.warns(UserWarning, match="seeded random init"):
            text = text_encoder(net, f"timm/{name}")(PROMPTS)
        tokens = open_clip.get_tokenizer("ViT-B-16")(PROMPTS)
        torch.testing.assert_close(text, clip.encode_text(tokens))
    with pytest.raises(ValueError, match="test_vit has no text tower"):
        build_backbone("t", None, model="timm/test_vit", pool="projection")


def test_a_model_without_a_text_tower_is_refused(tmp_path):
    tiny_vit(tmp_path / "vit")
    vit = build_backbone("v", None, model=f"hf/{tmp_path / 'vit'}")[0]
    with pytest.raises(ValueError, match="has no text tower"):
        text_encoder(vit, f"hf/{tmp_path / 'vit'}")
    with pytest.raises(ValueError, match="no image projection"):
        build_backbone("v", None, model=f"hf/{tmp_path / 'vit'}", pool="projection")
    timm_net = build_backbone("t", None, model="timm/test_vit")[0]
    with pytest.raises(ValueError, match="timm/test_vit has no text tower"):
        text_encoder(timm_net, "timm/test_vit")


def test_imprint_text_proxies_then_zero_shot_evaluation(tmp_path):
    """The commands end to end: embed an image folder with an open_clip model, make its
    classes' text proxies, evaluate GEN text; the accuracy equals numpy's argmax cosine."""
    from imprint.cli.main import main
    from imprint.io import load_embeddings

    classes = ["d0", "d1", "d2"]
    digit_image_folder(tmp_path / "images", classes, 12)
    model = ["--model", "open_clip/ViT-S-32", "--weights", "none", "--image-size", "32"]
    for split in ("train", "test"):
        args = ["embed", *model, "--images", str(tmp_path / "images"), "--split", split]
        assert main([*args, "--out", str(tmp_path / split), "-q"]) == 0
    (tmp_path / "templates.txt").write_text("a photo of a {}.\nart of the {}.\n")
    text_args = ["text-proxies", str(tmp_path / "train"), *model, "--out", str(tmp_path / "text")]
    assert main([*text_args, "--templates", str(tmp_path / "templates.txt")]) == 0
    text = load_embeddings(tmp_path / "text")
    assert text.meta["class_names"] == classes and text.meta["templates"][1] == "art of the {}."
    np.testing.assert_array_equal(text.labels, [0, 1, 2])
    (tmp_path / "grid.yaml").write_text("gen: [text]\nseeds: [0]\n")
    files = ["--train", str(tmp_path / "train"), "--test", str(tmp_path / "test")]
    evaluate = ["evaluate", *files, "--grid", str(tmp_path / "grid.yaml"), "-q"]
    out = tmp_path / "results.csv"
    assert main([*evaluate, "--out", str(out), "--text-proxies", str(tmp_path / "text")]) == 0
    test = load_embeddings(tmp_path / "test")
    x = np.asarray(test.embeddings, dtype=np.float64)
    predicted = np.argmax(x @ np.asarray(text.embeddings, dtype=np.float64).T, axis=1)
    import pandas as pd

    found = pd.read_csv(out)["accuracy"].item()
    assert found == pytest.approx(100 * np.mean(predicted == test.labels))
    # Without the text proxies a text grid is refused, naming the flag.
    assert main([*evaluate, "--out", str(tmp_path / "no.csv")]) != 0


def test_class_names_come_from_the_embeddings_or_the_user(tmp_path):
    from imprint.api.text import class_names_by_label
    from imprint.io import save_embeddings

    meta = {"class_names": ["n01440764", "n01443537", "n01484850"]}
    save_embeddings(tmp_path / "a", np.eye(3, dtype=np.float32), [0, 2, 2], meta)
    with pytest.warns(UserWarning, match="WordNet ids"):
        assert class_names_by_label(tmp_path / "a") == {0: "n01440764", 2: "n01484850"}
    named = class_names_by_label(tmp_path / "a", ["tench", "goldfish", "shark"])
    assert named == {0: "tench", 2: "shark"}
    with pytest.raises(ValueError, match=r"label\(s\) \[2\] have no name"):
        class_names_by_label(tmp_path / "a", ["tench", "goldfish"])
    save_embeddings(tmp_path / "b", np.eye(2, dtype=np.float32), [0, 1], {})
    with pytest.raises(ValueError, match="records no class names"):
        class_names_by_label(tmp_path / "b")
    assert json.loads((tmp_path / "a/meta.json").read_text())["n"] == 3
