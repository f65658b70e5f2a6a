# Datasets: download (or find) each registry dataset once; a manifest records what is there.


rule prepare_dataset:
    output:
        paths.DATASET_MANIFEST,
    log:
        "logs/prepare_dataset/{source}.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        data_dir=config["data_dir"],
        download=get_download_flag,
        classes=get_source_classes,
    script:
        "../scripts/prepare_dataset.py"
