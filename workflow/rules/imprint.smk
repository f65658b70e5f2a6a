# Imprinting: one job evaluates a whole grid (every configuration × seed) on one task, or on a
# batch of small tasks of one (dataset, backbone): mapping and task then hold '+'-joined names
# (planning/batches.py), so the job's start-up is paid once for all of them.


rule imprint_grid:
    input:
        unpack(get_embeddings),
        grid_file=get_grid_file,
        text=get_text_proxies,
    output:
        paths.GROUP_TABLE,
    log:
        "logs/imprint_grid/{experiment}/{dataset}/{backbone}/{mapping}/{task}.log",
    benchmark:
        "benchmarks/imprint_grid/{experiment}/{dataset}/{backbone}/{mapping}/{task}.tsv"
    wildcard_constraints:
        mapping=joined(MAPPINGS),
        task=joined(config["tasks"]),
    conda:
        "../../envs/imprint.yaml"
    # One core per job: a paper run is hundreds of jobs, and a job's fixed cost (starting
    # Python, importing torch and scikit-learn: ~5 s) is single-threaded. Give large groups
    # more with --set-threads imprint_grid=N (the slurm profile gives 4).
    threads: 1
    params:
        grid=get_grid,
        groups=get_batch_groups,
        ls_lambda=get_ls_lambda,
        ls_precision=get_ls_precision,
        incremental=lambda wildcards: config["experiments"][wildcards.experiment].get(
            "incremental"
        ),
    script:
        "../scripts/imprint_grid.py"


rule gather_results:
    input:
        get_experiment_tables,
    output:
        paths.EXPERIMENT_TABLE,
    log:
        "logs/gather_results/{experiment}.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/gather_results.py"
