# Embeddings: one frozen forward pass per (dataset, backbone, split), on a GPU when present.
rule extract_embeddings:
    input:
        get_dataset_manifest,
    output:
        paths.embedding_files(paths.EMBEDDINGS),
    log:
        "logs/extract_embeddings/{dataset}/{backbone}/{split}.log",
    benchmark:
        "benchmarks/extract_embeddings/{dataset}/{backbone}/{split}.tsv"
    wildcard_constraints:
        dataset=alternation(set(SINGLE_SOURCE) - set(own_datasets(config))),
        backbone=alternation(EXTRACTED),
    conda:
        "../../envs/imprint.yaml"
    # Decoding workers for the PIL path (ImageNet's JPEGs, swin_b): threads - 1 of them.
    # Snakemake lowers this to --cores where fewer are given.
    threads: 8
    resources:
        gpu=1,
    params:
        source=get_extraction_source,
        classes=get_dataset_classes,
        backbone=get_backbone_options,
        extraction=get_extraction_options,
        data_dir=config["data_dir"],
    script:
        "../scripts/extract_embeddings.py"


# A dataset of your own images (`image_folder:` or `hf:`): read in place, nothing to download;
# the job checks every image first and skips the unreadable ones.
use rule extract_embeddings as extract_own_images with:
    input:
        [],
    log:
        "logs/extract_own_images/{dataset}/{backbone}/{split}.log",
    benchmark:
        "benchmarks/extract_own_images/{dataset}/{backbone}/{split}.tsv"
    wildcard_constraints:
        dataset=alternation(own_datasets(config)),
        backbone=alternation(EXTRACTED),
    params:
        source=get_own_source,


use rule extract_embeddings as extract_source_embeddings with:
    output:
        paths.embedding_files(paths.SOURCE_EMBEDDINGS),
    log:
        "logs/extract_embeddings/sources/{source}/{backbone}/{split}.log",
    benchmark:
        "benchmarks/extract_embeddings/sources/{source}/{backbone}/{split}.tsv"
    wildcard_constraints:
        source=alternation(SOURCES),
        backbone=alternation(EXTRACTED),


# Text proxies (GEN text, text_mean; not in the paper): each class's prompts through a CLIP-like
# backbone's text tower, the class names read from its training embeddings' meta.json.
rule extract_text_proxies:
    input:
        train=get_train_embeddings,
    output:
        paths.embedding_files(paths.TEXT_PROXIES),
    log:
        "logs/extract_text_proxies/{dataset}/{backbone}.log",
    benchmark:
        "benchmarks/extract_text_proxies/{dataset}/{backbone}.tsv"
    wildcard_constraints:
        backbone=alternation(EXTRACTED),
    conda:
        "../../envs/imprint.yaml"
    params:
        backbone=get_backbone_options,
        templates=config["text_proxies"]["templates"],
        class_names=lambda wildcards: config["datasets"][wildcards.dataset].get(
            "class_names"
        ),
    script:
        "../scripts/extract_text_proxies.py"


rule join_embeddings:
    input:
        get_source_embeddings,
    output:
        paths.embedding_files(paths.EMBEDDINGS),
    log:
        "logs/join_embeddings/{dataset}/{backbone}/{split}.log",
    wildcard_constraints:
        dataset=alternation(JOINED),
        backbone=alternation(EXTRACTED),
    conda:
        "../../envs/imprint.yaml"
    params:
        offsets=get_label_offsets,
    script:
        "../scripts/join_embeddings.py"


# A backbone with `embeddings:` brings its own files: checked and copied, never extracted (no
# download, no weights), so any model's embeddings of any dataset go through the same analysis.
rule import_embeddings:
    input:
        get_imported_embeddings,
    output:
        paths.embedding_files(paths.EMBEDDINGS),
    log:
        "logs/import_embeddings/{dataset}/{backbone}/{split}.log",
    wildcard_constraints:
        backbone=alternation(IMPORTED),
    conda:
        "../../envs/imprint.yaml"
    params:
        classes=get_dataset_classes,
    script:
        "../scripts/import_embeddings.py"


# A backbone with `concat:` is made of others' embeddings of the same images (not in the paper):
# joined by image id, each part L2-normalised first unless `normalise: none`.
rule concat_embeddings:
    input:
        get_concat_parts,
    output:
        paths.embedding_files(paths.EMBEDDINGS),
    log:
        "logs/concat_embeddings/{dataset}/{backbone}/{split}.log",
    wildcard_constraints:
        backbone=alternation(CONCAT),
    conda:
        "../../envs/imprint.yaml"
    params:
        parts=lambda wildcards: config["backbones"][wildcards.backbone]["concat"],
        normalise=lambda wildcards: config["backbones"][wildcards.backbone]["normalise"],
    script:
        "../scripts/concat_embeddings.py"


# `snakemake verify_caches`: re-hash every cached embedding set against its meta.json, as
# `imprint verify results/embeddings` does. No output, so it runs whenever it is asked for;
# no input, so it checks what is there and builds nothing. It fails listing each corrupted
# set with the command that rebuilds it.
rule verify_caches:
    log:
        "logs/verify_caches.log",
    localrule: True
    conda:
        "../../envs/imprint.yaml"
    params:
        root=paths.EMBEDDINGS.partition("{")[0],  # results/embeddings/: every set
    script:
        "../scripts/verify_caches.py"
