"""Design and confirmation cohorts: the comparison rerun on fresh synthetic cohorts.

- :mod:`.config`: the typed ``confirmation:`` parameters and each cohort's run parameters.
- :mod:`.runner`: generates each cohort and runs ``data_processing … evaluation`` on it, one
  ``kedro run`` process per step, resumable.
- :mod:`.report`: the confirmation table, its summary and Markdown.

Entry point: ``python -m tle_kedro.confirmation`` (``make design``, ``make confirm``).
A tool beside the pipelines, like ``benchmarks/``: it runs them, no pipeline runs it.
"""
