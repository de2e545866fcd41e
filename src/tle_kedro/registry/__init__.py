"""The registered model and its life in the MLflow registry (no Kedro).

- :mod:`.pyfunc`: :class:`~tle_kedro.registry.pyfunc.TLESurvivalModel`, the MLflow pyfunc that
  bundles preprocessing, the fitted model and the training cohort's risk-group cut.
- :mod:`.promotion`: validation metric and champion/challenger aliases.
- :mod:`.explain`: per-patient attribution maps, input contributions and report figure.
"""
