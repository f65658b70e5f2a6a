"""PIL's resize on tensors, against Pillow itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms._presets import ImageClassification
from torchvision.transforms.functional import InterpolationMode

from imprint.data.backbones import PresetOnBatches
from imprint.data.pil_resize import installed_pillow_order, pil_weights, resize_like_pil

PIL_MODES = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

SHAPES = [  # (input h, w) -> (output h, w)
    ((28, 28), (256, 256)),  # MNIST to the presets' resize
    ((32, 32), (238, 238)),  # CIFAR-10 to swin_b's
    ((1, 1), (5, 3)),
    ((1, 40), (7, 9)),
    ((300, 200), (256, 256)),  # height shrinks, width grows: Pillow 13 goes vertical first
    ((100, 32), (50, 16)),  # both shrink, height by more than twice the pixels
    ((45, 29), (13, 9)),
    ((640, 480), (64, 48)),  # strong antialiasing
    ((17, 23), (17, 50)),  # one side unchanged
]


@pytest.mark.parametrize("interpolation", PIL_MODES)
@pytest.mark.parametrize(("in_hw", "out_hw"), SHAPES)
def test_resize_equals_pillow_bit_for_bit(interpolation, in_hw, out_hw):
    rng = np.random.default_rng(in_hw[0] * 1000 + out_hw[1])
    images = rng.integers(0, 256, size=(2, 3, *in_hw), dtype=np.uint8)
    images[1, :, ::2] = 255  # hard edges: bicubic overshoots past 0..255 and is clipped
    images[1, :, 1::2] = 0
    got = resize_like_pil(torch.from_numpy(images), out_hw, interpolation).numpy()
    for image, out in zip(images, got, strict=True):
        pil = Image.fromarray(image.transpose(1, 2, 0)).resize(
            out_hw[::-1], PIL_MODES[interpolation]
        )
        np.testing.assert_array_equal(out.transpose(1, 2, 0), np.asarray(pil))


def test_pass_order_is_read_off_the_installed_pillow():
    # Where the order matters, the other order does not reproduce Pillow.
    noise = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (300, 200), np.uint8))
    pil = np.asarray(Image.fromarray(noise.numpy()).resize((256, 256), PIL_MODES["bilinear"]))
    order = installed_pillow_order((300, 200), (256, 256), "bilinear")
    assert np.array_equal(resize_like_pil(noise, (256, 256), "bilinear", order).numpy(), pil)
    assert not np.array_equal(
        resize_like_pil(noise, (256, 256), "bilinear", not order).numpy(), pil
    )


def test_blank_first_images_do_not_decide_the_pass_order():
    # A set whose first images are blank (any order reproduces them) and whose later ones are
    # not: the order comes from Pillow on noise, so the later images still match.
    preset = ImageClassification(crop_size=16, resize_size=16)
    images = np.zeros((10, 3, 100, 32), dtype=np.uint8)
    images[8:] = np.random.default_rng(2).integers(0, 256, (2, 3, 100, 32), dtype=np.uint8)
    got = PresetOnBatches(preset)(torch.from_numpy(images))
    pil = torch.stack([preset(Image.fromarray(im.transpose(1, 2, 0))) for im in images])
    assert torch.equal(got, pil)


def test_weights_rows_sum_to_one_in_fixed_point():
    for interpolation in PIL_MODES:
        for n_in, n_out in ((28, 256), (256, 28), (7, 7)):
            weights = pil_weights(n_in, n_out, interpolation)
            taps = (weights != 0).sum(axis=1)
            # normalised to 1, then each tap rounded: off by at most half a unit per tap
            assert np.all(np.abs(weights.sum(axis=1) - 2**22) <= taps / 2)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        pil_weights(4, 2, "lanczos")
    with pytest.raises(ValueError, match="uint8"):
        resize_like_pil(torch.zeros(1, 4, 4), (2, 2), "bilinear")


def test_bicubic_preset_runs_on_batches():
    preset = ImageClassification(
        crop_size=8, resize_size=9, interpolation=InterpolationMode.BICUBIC
    )
    images = np.random.default_rng(3).integers(0, 256, (4, 3, 12, 10), dtype=np.uint8)
    pil = torch.stack([preset(Image.fromarray(im.transpose(1, 2, 0))) for im in images])
    assert torch.equal(PresetOnBatches(preset)(torch.from_numpy(images)), pil)
