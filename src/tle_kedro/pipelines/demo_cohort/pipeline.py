"""``demo_cohort``: parameters → ``raw_cohort`` (a synthetic BIDS folder at ``cohort_dir``)."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.demo_cohort.nodes import generate_demo_cohort


def create_pipeline(**kwargs: object) -> Pipeline:
    """The demo_cohort pipeline (one node; images are written by the dataset's ``save``)."""
    return Pipeline(
        [
            Node(
                generate_demo_cohort,
                inputs=["params:demo_cohort", "params:demo_cohort_shift"],
                outputs="raw_cohort",
                name="generate_demo_cohort",
            )
        ]
    )
