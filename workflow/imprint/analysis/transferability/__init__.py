"""Transferability estimators: how well a frozen representation should transfer to a task,
from the task's training embeddings alone (no classifier is trained).

One module per family of estimators, and one table of them all:
  linear.py: LogME and H-score (how well a linear model of the features explains the labels);
  neighbours.py: leave-one-out kNN accuracy and TMI (nearest neighbours within the task);
  ncti.py: NCTI's three terms and their combination across candidate backbones;
  collapse_measures.py: NC1 and VCI (analysis/collapse.py) as estimates;
  fisher.py: SFDA (a shrunk Fisher discriminant after its self-challenge);
  mixture.py: NLEEP (LEEP with a Gaussian mixture's components as source labels);
  separability.py: PARC (rank agreement of row dissimilarities with the labels') and GBC
      (Bhattacharyya overlap of the classes' diagonal Gaussians);
  potential.py: PED (classes pushed apart by their potential energy, then LogME);
  static.py: embedding_size (parameter_count is read from the embeddings' meta.json);
  common.py: EstimatorUndefined, the one-hot targets, centring, exact PCA and the seeded row
      samples the families share;
  table.py: every estimator's function, output keys, direction and figure label, and
      estimate_all, which runs them all on one task.

Degenerate data (constant features, fewer rows than dimensions, classes of one or two rows,
identical rows): each estimator's docstring says which regularisation it computes with, or
when it raises EstimatorUndefined (a ValueError naming the estimator, why and what it needs);
none returns NaN or inf. Nothing is imported here: import the module you need.
"""
