"""The GEN table (engine/vocabulary.GEN_TABLE) against what each GEN's function does: the engine
shares work by the table's word, so a row that misstates its GEN gives wrong results."""

import subprocess
import sys

import pytest
import torch

from imprint.engine.generate import PROXY_FUNCTIONS, generate_proxies
from imprint.engine.vocabulary import (
    ALPHA_GEN,
    GEN,
    GEN_TABLE,
    JOINT_GEN,
    METHOD_GEN,
    PROBE_GEN,
    RANDOM_GEN,
    SEEDED_GEN,
    TEXT_GEN,
)
from imprint.figures.style import GEN_STYLE

PROXY_GENS = [g for g in GEN if g in PROXY_FUNCTIONS]


def _classes(sizes=(9, 12, 7)):
    g = torch.Generator().manual_seed(3)
    return [torch.randn(n, 5, generator=g) + 4 * i for i, n in enumerate(sizes)]


def _proxies(samples, gen, k, seed):
    # A class's text proxy (GEN text, text_mean) is made from its own rows, so a subset of the
    # classes keeps theirs.
    text = [torch.nn.functional.normalize(x[:1].flip(1), dim=1) for x in samples]
    return generate_proxies(samples, gen, k, seed, ls_lambda=0.1, text=text, alpha=0.5)


def test_the_names_other_modules_read_follow_from_the_table():
    assert set(JOINT_GEN) == {"ls", "kls"}
    assert set(RANDOM_GEN) == {"random", "fps", "none"}
    assert set(SEEDED_GEN) == {*RANDOM_GEN, "kmeans", "kls", PROBE_GEN, "ranpac", "fetril"}
    assert set(TEXT_GEN) == {"text", "text_mean"} and ALPHA_GEN == ("text_mean", "teen")
    assert METHOD_GEN == ("fecam", "ranpac", "fetril")
    assert set(PROXY_FUNCTIONS) == set(GEN) - {PROBE_GEN, *METHOD_GEN}
    assert list(GEN_STYLE) == list(GEN)  # figures list GENs in the table's order


def test_the_vocabulary_needs_no_torch():
    code = "import sys, imprint.engine.vocabulary; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("gen", PROXY_GENS)
def test_seed_says_whether_the_proxies_depend_on_the_seed(gen):
    # Proxies of a GEN without a seed are made once and serve every seed.
    samples = _classes()
    k = GEN_TABLE[gen].fixed_k or 3
    first, second = _proxies(samples, gen, k, 1), _proxies(samples, gen, k, 2)
    same = all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert same == (GEN_TABLE[gen].seed is None)


@pytest.mark.parametrize("gen", PROXY_GENS)
def test_joint_says_whether_a_class_depends_on_the_others(gen):
    # Incremental sessions keep the proxies of earlier classes only for GENs that are not joint.
    samples = _classes()
    k = GEN_TABLE[gen].fixed_k or 3
    together = _proxies(samples, gen, k, 5)[0]
    if GEN_TABLE[gen].seed == "stream":  # the stream runs on through the later classes
        alone = _proxies(samples[:1], gen, k, 5)[0]
    else:
        alone = _proxies([samples[0], samples[2]], gen, k, 5)[0]
    assert torch.equal(together, alone) != GEN_TABLE[gen].joint


@pytest.mark.parametrize("gen", PROXY_GENS)
def test_fixed_k_is_the_number_of_proxies(gen):
    samples = _classes()
    fixed_k = GEN_TABLE[gen].fixed_k
    for k in (2, 4) if fixed_k is None else (fixed_k,):
        counts = [p.shape[0] for p in _proxies(samples, gen, k, 0)]
        assert counts == ([x.shape[0] for x in samples] if k == -1 else [k] * len(samples))
