"""Modeling: TransEpRelap, its ablations and the baselines in cross-validation."""
