"""The ``evaluation`` pipeline: reads ``oof_predictions`` and writes 08_reporting.

``log_model_runs`` also reads ``modeling_config`` (the models' configuration) for the
per-model MLflow runs."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tle_kedro.pipelines.evaluation import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.evaluate,
                inputs=[
                    "oof_predictions",
                    "clinical_validated",
                    "ground_truth",
                    "params:evaluation",
                ],
                outputs="evaluation_result",
                name="evaluate_out_of_fold_predictions",
            ),
            Node(
                nodes.report_tables,
                inputs="evaluation_result",
                outputs=[
                    "comparison_table",
                    "comparison_table_md",
                    "metric_intervals",
                    "evaluation_metrics",
                ],
                name="report_comparison_tables",
            ),
            Node(
                nodes.track_model_runs,
                inputs=["evaluation_result", "modeling_config"],
                outputs=None,
                name="log_model_runs",
            ),
            Node(
                nodes.report_plots,
                inputs=["evaluation_result", "params:evaluation"],
                outputs=[
                    "c_index_forest_plot",
                    "km_risk_groups_plot",
                    "calibration_12m_plot",
                    "time_dependent_auc_plot",
                ],
                name="report_plots",
            ),
            Node(
                nodes.report_decision_curve,
                inputs=["evaluation_result", "params:evaluation"],
                outputs=["decision_curve_12m", "decision_curve_12m_plot"],
                name="report_decision_curve",
            ),
            Node(
                nodes.report_c_by_modality,
                inputs=["oof_predictions", "clinical_validated", "params:evaluation"],
                outputs=["c_by_modality", "c_by_modality_md"],
                name="report_c_by_modality",
            ),
            Node(
                nodes.baseline_table,
                inputs="clinical_validated",
                outputs=["clinical_baseline_table", "clinical_baseline_plot"],
                name="clinical_baseline_table",
            ),
        ],
        tags=["evaluation"],
    )
