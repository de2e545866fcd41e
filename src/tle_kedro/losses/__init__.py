"""Survival losses (plain torch)."""

from tle_kedro.losses.cox import cox_partial_likelihood

__all__ = ["cox_partial_likelihood"]
