"""``<model>.cv_fold_models``: one model's fold models, pickled, loaded only when asked for.

The final model node reads the fold models of the model ``registry.model: auto`` chooses at
run time, so in ``registry.champion: fold_ensemble`` it takes every candidate's
``<model>.cv_fold_models`` as inputs (the lineage ``kedro viz`` shows is what it may read).
A pickled set of fold networks is 100 MB or more per model; :class:`FoldModelsDataset`
therefore loads as a :class:`LazyFoldModels` handle (the model's name and the resolved
file) and unpickles when the node calls :meth:`LazyFoldModels.load`, i.e. only for the chosen
model. Saving is ``PickleDataset``'s. The same idea as ``PartitionedDataset``'s lazy
partitions, for one file whose model name the dataset factory fills in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kedro.io.core import VersionNotFoundError, get_filepath_str
from kedro_datasets.pickle import PickleDataset


@dataclass(frozen=True)
class LazyFoldModels:
    """The fold models of ``model`` (``<model>-r<repeat>-f<fold>`` → fitted), not yet read.

    Attributes:
        model: the comparison model's name.
        path: the file :meth:`load` reads (the version resolved when the catalog loaded
            the dataset), or None when no fold models were ever saved.
    """

    model: str
    path: str | None
    read: Callable[[str], dict[str, Any]] = field(repr=False, compare=False)

    def load(self) -> dict[str, Any]:
        """Unpickle the fold models.

        Raises:
            ValueError: no file (the modeling pipeline never saved this model's fold models).
        """
        if self.path is None:
            raise ValueError(
                f"no fold models of {self.model!r} were saved (06_models/{self.model}/"
                "cv_fold_models.pkl): set modeling.keep_fold_models: true and rerun "
                f"`kedro run --pipelines=modeling --namespaces={self.model}`"
            )
        return self.read(self.path)


class FoldModelsDataset(PickleDataset):
    """A ``PickleDataset`` of one model's fold models that loads as :class:`LazyFoldModels`.

    Args:
        model: the model whose fold models the file holds (``"{model}"`` in the catalog
            factory); the remaining arguments are ``PickleDataset``'s.
    """

    def __init__(self, *, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._model = model

    def load(self) -> LazyFoldModels:  # type: ignore[override]
        try:
            path: str | None = get_filepath_str(self._get_load_path(), self._protocol)
        except VersionNotFoundError:
            path = None
        if path is not None and not self._fs.exists(path):
            path = None
        return LazyFoldModels(self._model, path, self._read)

    def _read(self, path: str) -> dict[str, Any]:
        with self._fs.open(path, **self._fs_open_args_load) as f:
            backend = importlib.import_module(self._backend)
            return backend.load(f, **self._load_args)  # type: ignore[no-any-return]

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "model": self._model}
