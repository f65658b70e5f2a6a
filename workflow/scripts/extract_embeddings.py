"""Rule extract_embeddings: embed one split of one dataset with one frozen backbone."""

from _common import rule_log

from imprint.data.extract import extract_to_file
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    opts, extraction = sm.params.backbone, sm.params.extraction
    extract_to_file(
        sm.wildcards.backbone,
        sm.params.source,
        sm.wildcards.split,
        root=sm.params.data_dir,
        out_path=embedding_dirs(sm.output)[0],
        # The validated config has every default filled in (the schema holds them).
        weights=opts["weights"],
        image_size=opts["image_size"],
        model=opts.get("model"),  # a backbone by provider and name (data/providers.py)
        pool=opts.get("pool"),
        layers=opts.get("layers"),  # inner modules' features (data/layers.py)
        batch_size=sm.config["extraction"]["batch_size"],  # not a param: a speed setting
        limit_per_class=extraction["limit_per_class"],
        precision=extraction["precision"],
        batched=extraction["batched"],
        classes=sm.params.classes,
        download=False,  # prepare_dataset has fetched it
        num_workers=max(0, sm.threads - 1),
        progress=True,
    )
