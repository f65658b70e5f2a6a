"""File-level entry points, by pipeline stage: what the `imprint` command and the workflow's
scripts call. Each takes and writes files; the computations are in data/, engine/, analysis/
and figures/."""
