"""The Kedro pipelines, one package each (``pipeline.py`` and thin ``nodes.py``).

``data_processing``, ``feature_engineering``, ``modeling``, ``evaluation`` and ``final_model``
(the refit, registered and promoted) are the default run; ``demo_cohort`` and
``dicom_to_bids`` make a cohort folder and ``inference`` applies the champion to new patients,
each run by name. Nodes only call the library packages beside this one;
``tle_kedro.pipeline_registry`` assembles the pipelines.
"""
