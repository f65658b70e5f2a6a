"""Rule extract_text_proxies: a CLIP-like backbone's text proxies of a dataset's classes."""

from _common import rule_log

from imprint.api.text import make_text_proxies
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    opts = sm.params.backbone
    make_text_proxies(
        embedding_dirs(sm.input.train)[0],
        embedding_dirs(sm.output)[0],
        model=opts["model"],
        backbone=sm.wildcards.backbone,
        templates=sm.params.templates,
        class_names=sm.params.class_names,
        weights=opts["weights"],
        image_size=opts["image_size"],
        pool=opts.get("pool"),
        where=f"datasets.{sm.wildcards.dataset}.class_names",
    )
