"""Fitting the comparison's models (no Kedro): configuration, fit loop, cross-validation, tuning.

``config`` and ``specs`` validate ``parameters_modeling.yml`` into typed configurations and one
:class:`~tle_kedro.training.specs.ModelSpec` per model; ``data`` builds tensors and batches;
``fit`` fits one neural model (``FitInputs`` in, a ``fitted.FittedNeuralModel`` out, on the
``device`` it resolves: ensemble members, snapshots, calibration) with the one training
``loop`` (epochs, validation, early stopping) and ``warm_start`` for TransEpRelap's linear
term; ``tuning`` runs a fold's Optuna study and ``fold_tuning`` one study per outer fold
(with its storage checks);
``cv_data`` holds what every fold shares (data, splits, checks); ``cv`` fits every model on
every fold (``parallel``: inline or on a Dask cluster, one per ``kedro run``); ``classical``
fits the scikit-survival baselines; ``final`` refits the registered model on every patient.
"""
