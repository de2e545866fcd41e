"""Survival losses (plain torch): the Cox partial likelihood (Efron or Breslow ties, torchsurv).

Called as ``cox_partial_likelihood(log_risk, event, time)``, the project's argument order for
survival functions.
"""

from tle_kedro.losses.cox import cox_partial_likelihood

__all__ = ["cox_partial_likelihood"]
