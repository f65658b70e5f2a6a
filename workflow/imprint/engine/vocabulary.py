"""The IMPRINT vocabulary: component names and configuration keys, one place for all of them.

Config keys, library arguments, result-table columns and figure labels use these names. No
torch here, so planning and plotting can import them without the engine.
"""

NORM_PRE = ("none", "l2")
PRESAMPLING = ("all", "weibull")
GEN = (
    "mean",
    "kmeans",
    "kmedoids",
    "fps",
    "random",
    "cov_max",
    "all",
    "none",
    "ls",
    "kls",
    "linear_probe",
)
JOINT_GEN = ("ls", "kls")  # proxies depend on all classes at once
RANDOM_GEN = ("random", "fps", "none")  # draw from the random generator
# linear_probe (not in the paper): a multinomial logistic regression's weights as one proxy per
# class and its biases added to the inner products (engine/baselines.py); read by AGG max with
# the inner product and NORMpost none only. Its penalty search holds out rows drawn with the seed.
PROBE_GEN = "linear_probe"
NORM_POST = ("none", "l2", "quantile")
NORM_INF = ("none", "l2")
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
    paper (the linear probe, dinov2's kNN votes): labels mark them so."""
    return row["gen"] == PROBE_GEN or row["weighting"] == "exp_similarity"


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
