"""Harrell's concordance index (Harrell 1996): the project's one implementation.

Pairs (i, j) of patients are counted in two (n, n) matrices, so that the point estimate,
the vectorised bootstrap (``evaluation.bootstrap``), early stopping on an inner validation
split (``training.fit``) and the per-fold test metric (``training.cv``) share one rule:

- comparable, ``K_ij = 1``: i has an event and j a longer time, or j is censored at i's time
  (a patient censored when another has the event is taken to outlive it); two events at the
  same time are not comparable;
- scored, ``S_ij = K_ij`` × (1 when ``risk_i > risk_j``, ½ when the risks differ by at most
  ``tied_tol``, 0 otherwise);
- ``C = sum(S) / sum(K)``, NaN when no pair is comparable.

That is scikit-survival's ``concordance_index_censored`` and lifelines' ``concordance_index``
on every tie (``tests/evaluation/test_concordance.py``). Hand-written because the bootstrap
needs the pair matrices themselves (one matrix product per resample instead of one sksurv call)
and the per-epoch check needs NaN, not an exception, for a split without a comparable pair.
Arguments follow the project's order for survival functions: ``(risk, event, time)``.
"""

from __future__ import annotations

import numpy as np

TIED_TOL = 1e-8  # scikit-survival's tolerance for tied risks


def comparable_matrix(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    """(n, n) float64 ``K_ij`` = 1 when i has an event and j is comparable to it (see above)."""
    e = np.asarray(event).astype(bool).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    later = t[None, :] > t[:, None]
    censored_tie = (t[None, :] == t[:, None]) & ~e[None, :]
    return (e[:, None] & (later | censored_tie)).astype(np.float64)


def concordance_scores(
    comparable: np.ndarray, risk: np.ndarray, tied_tol: float = TIED_TOL
) -> np.ndarray:
    """(n, n) float64 ``S_ij``: 1 if risk_i > risk_j, ½ if tied within ``tied_tol``, times K_ij."""
    r = np.asarray(risk, dtype=np.float64).ravel()
    diff = r[:, None] - r[None, :]
    score = np.where(np.abs(diff) <= tied_tol, 0.5, (diff > 0).astype(np.float64))
    return score * comparable


def harrell_c(risk: np.ndarray, event: np.ndarray, time: np.ndarray) -> float:
    """Harrell's C of ``risk`` (higher = earlier event); inputs (n,).

    NaN when no pair is comparable (no event) or a risk is not finite (a diverged network).
    O(n²) memory: fine for a cohort of a few thousand patients.

    Raises:
        ValueError: inputs of unequal length.
    """
    r = np.asarray(risk, dtype=np.float64).ravel()
    e = np.asarray(event).ravel()
    t = np.asarray(time, dtype=np.float64).ravel()
    if not (r.shape == e.shape == t.shape):
        raise ValueError(
            f"harrell_c needs risk, event, time of equal length, got {r.shape}, {e.shape}, "
            f"{t.shape}"
        )
    if not np.isfinite(r).all():
        return float("nan")
    comparable = comparable_matrix(e, t)
    n_pairs = comparable.sum()
    if n_pairs == 0:
        return float("nan")
    return float(concordance_scores(comparable, r).sum() / n_pairs)
