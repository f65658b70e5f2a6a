"""The `imprint` command: evaluate grids, count configurations, measure collapse, rank methods,
answer the model-choice questions, check caches and configs. Argument parsing only: every
command calls one file-level function of imprint.api (or planning, for the checks)."""
