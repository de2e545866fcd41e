"""Evaluation: metrics with intervals, comparison table, plots, clinical baseline table."""
