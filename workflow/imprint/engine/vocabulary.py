"""The IMPRINT vocabulary: component names and configuration keys, one place for all of them.

Config keys, library arguments, result-table columns and figure labels use these names; the
GEN table also names each GEN's function and its look in figures. No torch here, so planning
and plotting can import them without the engine.
"""

from dataclasses import dataclass

# center_l2 (not in the paper): SimpleShot's CL2N, the rows minus a mean (the task's training
# rows', or an incremental protocol's base session's), then L2; as NORMpre it centres the
# training rows, as NORMinf the test rows by the same mean, so the two go together.
NORM_PRE = ("none", "l2", "center_l2")
PRESAMPLING = ("all", "weibull")
PROBE_GEN = "linear_probe"  # scores, not proxies alone: evaluated apart (engine/evaluate.py)


@dataclass(frozen=True)
class GenSpec:
    """One GEN: how the engine makes its proxies and how figures draw it."""

    name: str
    # The function of engine/generate.py that makes its proxies, by name (no torch here);
    # None: no proxies alone (the linear probe's biases are part of its scores).
    function: str | None
    # How figures draw it: Okabe-Ito colours (colour-blind safe) plus two of Paul Tol's, as
    # ten GENs need more than eight; markers and dashes keep lines apart in greyscale.
    label: str
    color: str
    marker: str
    linestyle: str = "-"
    # None: k proxies per class, k from the grid; 1: one per class; -1: every row. The grid
    # sets k to it, so a fixed k never multiplies configurations.
    fixed_k: int | None = None
    # What the configuration's seed drives. None: nothing, so one run serves every seed;
    # "stream": draws that continue the configuration's generator after the few-shot draws;
    # "fit": a fit's own randomness (scikit-learn's random_state, the probe's held-out rows).
    seed: str | None = None
    joint: bool = False  # fitted on all classes at once (so not incremental)
    # Reads the classes' text proxies (a CLIP-like backbone's prompt embeddings; not in the
    # paper); "alpha": also weighs them against the image mean by the grid's α.
    text: str | None = None
    alpha: bool = False  # reads the grid's α (text_mean's weight, TEEN's shift weight)
    # A named class-incremental method (engine/incremental_methods.py): a classifier of its
    # own on NORMpre's training rows and NORMinf's test rows, evaluated apart, as the probe.
    method: bool = False


# Every GEN, in the order figures and messages list them. A new GEN: its row here, its
# function in engine/generate.py, its test.
GEN_TABLE: dict[str, GenSpec] = {
    spec.name: spec
    for spec in (
        GenSpec("mean", "class_means", "mean", "#000000", "o", fixed_k=1),
        GenSpec("kmeans", "kmeans_centres", "k-means", "#0072B2", "s", seed="fit"),
        GenSpec("kmedoids", "kmedoids_rows", "k-medoids", "#56B4E9", "D"),
        GenSpec("fps", "farthest_points", "FPS", "#009E73", "^", seed="stream"),
        GenSpec("random", "random_rows", "random", "#999999", "v", seed="stream"),
        GenSpec("cov_max", "max_covariance_rows", "cov-max", "#E69F00", "P"),
        GenSpec("all", "every_row", "all samples", "#CC79A7", "*", fixed_k=-1),
        GenSpec("ls", "ls_proxies", "least squares", "#D55E00", "X", "--", fixed_k=1, joint=True),
        GenSpec(
            "kls", "kls_proxies", "k-least squares", "#882255", "p", "--", seed="fit", joint=True
        ),
        GenSpec("none", "untrained_proxies", "untrained", "#8C6D31", "h", ":", seed="stream"),
        # Not in the paper: a multinomial logistic regression's weights as one proxy per class,
        # its biases added to the inner products (engine/baselines.py); read by AGG max with the
        # inner product and NORMpost none only.
        GenSpec(PROBE_GEN, None, PROBE_GEN, "#661100", "X", fixed_k=1, seed="fit", joint=True),
        # Not in the paper: zero-shot proxies from class-name prompts (data/text_proxies.py),
        # and α · text proxy + (1 − α) · image mean (α = 0: GEN mean; α = 1: GEN text).
        GenSpec("text", "text_proxies", "zero-shot (text)", "#44AA99", "<", "-.", 1, text="only"),
        GenSpec(
            "text_mean",
            "text_mean_proxies",
            "text + mean",
            "#117733",
            ">",
            "-.",
            1,
            text="alpha",
            alpha=True,
        ),
        # Not in the paper: training-free class-incremental methods on frozen features. TEEN
        # (Wang et al. 2023) calibrates the classes after the base session towards the base
        # class means (α: its shift weight; engine/generate.teen_proxies); FeCAM, RanPAC and
        # FeTrIL are classifiers of their own (engine/incremental_methods.py).
        GenSpec("teen", "teen_proxies", "TEEN", "#DDCC77", "d", "--", 1, alpha=True),
        GenSpec("fecam", None, "FeCAM", "#AA4499", "8", ":", 1, method=True),
        GenSpec("ranpac", None, "RanPAC", "#332288", "H", ":", 1, seed="fit", method=True),
        GenSpec("fetril", None, "FeTrIL", "#88CCEE", "x", ":", 1, seed="fit", method=True),
    )
}
GEN = tuple(GEN_TABLE)
# GENs whose proxies are one system over all classes: ls and kls (both need the ridge λ).
JOINT_GEN = tuple(g.name for g in GEN_TABLE.values() if g.joint and g.function)
SEEDED_GEN = tuple(g.name for g in GEN_TABLE.values() if g.seed)  # proxies made per seed
RANDOM_GEN = tuple(g.name for g in GEN_TABLE.values() if g.seed == "stream")
TEXT_GEN = tuple(g.name for g in GEN_TABLE.values() if g.text)  # need text proxies
ALPHA_GEN = tuple(g.name for g in GEN_TABLE.values() if g.alpha)  # read the grid's α
METHOD_GEN = tuple(g.name for g in GEN_TABLE.values() if g.method)  # classifiers of their own
# TEEN's softmax temperature τ over the cosine similarities of a new class mean to the base
# class means (the authors' default, 16, in every published setting).
TEEN_TEMPERATURE = 16.0
# α of the configurations whose GEN reads none (a placeholder, as m = -1 for AGG max).
NO_ALPHA = -1.0
NORM_POST = ("none", "l2", "quantile")
NORM_INF = ("none", "l2", "center_l2")
AGG = ("max", "mnn")
DISTANCES = ("inner_product", "cosine", "euclidean", "manhattan", "chebyshev", "mahalanobis")
# exp_similarity: dinov2's kNN evaluation (not in the paper): a cosine neighbour at similarity
# s = 1 - d votes exp(s / KNN_TEMPERATURE); only with distance cosine.
WEIGHTINGS = ("uniform", "weighted_by_distance", "exp_similarity")
KNN_TEMPERATURE = 0.07
# The smallest T whose votes stay finite: a similarity up to 1 votes exp(1/T), which float64
# holds for 1/T < 709.78 (T > 0.00141); beyond, every vote is inf and ties decide silently.
KNN_MIN_TEMPERATURE = 0.0015


def is_baseline(row) -> bool:
    """Whether a configuration (a mapping of CONFIG_KEYS) is one of the baselines not in the
    paper (the linear probe, dinov2's kNN votes, the named incremental methods FeCAM, RanPAC
    and FeTrIL): labels mark them so, and the best imprinting leaves them out."""
    return (
        row["gen"] == PROBE_GEN or row["gen"] in METHOD_GEN or row["weighting"] == "exp_similarity"
    )


BASELINE_MARK = " (not in the paper)"

# The columns whose values make a group, one "voter" of the statistics: a results table per
# (backbone, dataset, label mapping, task).
GROUP_COLUMNS = ("backbone", "dataset", "mapping", "task")

# The columns that identify a configuration (the seed excluded), in results-table order.
CONFIG_KEYS = (
    "norm_pre",
    "presampling",
    "quantile_lo",
    "quantile_hi",
    "fewshot",
    "gen",
    "k",
    "alpha",
    "norm_post",
    "norm_inf",
    "agg",
    "distance",
    "weighting",
    "m",
)

# Arithmetic of GEN ls/kls: float64 solves the ridge system in double precision; float32 is
# the reference's (float32 statistics and an explicit float32 inverse).
LS_PRECISIONS = ("float64", "float32")
DEFAULT_LS_PRECISION = "float64"
