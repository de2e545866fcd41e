"""Survival losses (plain torch): the Cox partial likelihood (Efron or Breslow ties, torchsurv)
and the discrete-time logistic-hazard likelihood.

Called as ``loss(output, event, time)``, the project's argument order for survival functions.
"""

from tle_kedro.losses.cox import cox_partial_likelihood
from tle_kedro.losses.discrete_time import logistic_hazard_nll

__all__ = ["cox_partial_likelihood", "logistic_hazard_nll"]
