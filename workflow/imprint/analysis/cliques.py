"""Maximal cliques of an undirected graph: in a critical-difference analysis
(imprint.analysis.stats), the groups of methods no pair of which differs significantly."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

__all__ = ["maximal_cliques"]


def _as_neighbours(adjacency) -> tuple[list[Hashable], dict[int, set[int]]]:
    """The nodes of a graph given as maximal_cliques takes it, and each one's neighbours by
    position (self-loops left out)."""
    if isinstance(adjacency, pd.DataFrame):
        if list(adjacency.index) != list(adjacency.columns):
            raise ValueError("adjacency DataFrame must have identical index and columns")
        nodes = list(adjacency.columns)
        matrix = adjacency.to_numpy().astype(bool)
    elif isinstance(adjacency, Mapping):
        nodes = list(adjacency)
        for nbrs in adjacency.values():
            nodes += [n for n in nbrs if n not in nodes]
        pos = {n: k for k, n in enumerate(nodes)}
        matrix = np.zeros((len(nodes), len(nodes)), dtype=bool)
        for a, nbrs in adjacency.items():
            for b in nbrs:
                matrix[pos[a], pos[b]] = matrix[pos[b], pos[a]] = True
    else:
        matrix = np.asarray(adjacency).astype(bool)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("adjacency must be a square matrix")
        nodes = list(range(matrix.shape[0]))
    if not np.array_equal(matrix, matrix.T):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    neighbours = {
        i: {j for j in np.flatnonzero(matrix[i]).tolist() if j != i} for i in range(len(nodes))
    }
    return nodes, neighbours


def maximal_cliques(adjacency) -> list[list]:
    """All maximal cliques of an undirected graph (Bron–Kerbosch with pivoting).

    ``adjacency`` is a square boolean matrix (ndarray, or DataFrame whose index equals its
    columns) or a mapping ``node -> iterable of neighbours``; self-loops are ignored. Members of
    each clique are listed in node order, and the cliques sorted by their members' positions,
    so with nodes ordered by rank the output reads best to worst. Isolated nodes are
    one-member cliques.
    """
    nodes, nbrs = _as_neighbours(adjacency)
    found: list[list[int]] = []

    def expand(r: set[int], p: set[int], x: set[int]) -> None:
        if not p and not x:
            found.append(sorted(r))
            return
        # The pivot with most neighbours in P minimises the branches explored.
        pivot = max(p | x, key=lambda u: len(nbrs[u] & p))
        for v in sorted(p - nbrs[pivot]):
            expand(r | {v}, p & nbrs[v], x & nbrs[v])
            p = p - {v}
            x = x | {v}

    expand(set(), set(range(len(nodes))), set())
    found.sort()
    return [[nodes[i] for i in clique] for clique in found]
