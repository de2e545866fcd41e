"""`make bench`: measure the hot paths on the 220-patient demo cohort; rewrite docs/benchmarks.md.

Every figure is produced here, by the command printed beside it, in a throw-away copy of the
project (so the developer's data/ and mlflow.db are untouched). Pipeline stages run
``--repeats`` times, each repeat in a fresh copy from nothing (demo cohort, cold cache), and
report the median wall time and the largest peak memory; micro-benchmarks report the median
of their own repeats. A quick check before touching the hot path:
``--repeats 1 --skip-modeling`` (about 3 minutes).

    python benchmarks/run_benchmarks.py [--n-patients 220] [--repeats 2] [--skip-modeling]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
          "06_models", "07_model_output", "08_reporting")  # fmt: skip


@dataclass
class Stage:
    name: str
    command: str
    runs: list[float]
    peaks_mib: list[float]

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks_mib)

    def add(self, other: Stage) -> Stage:
        return Stage(
            self.name, self.command, self.runs + other.runs, self.peaks_mib + other.peaks_mib
        )


def project_copy(base: Path) -> Path:
    """Configuration + empty data layers; the installed package is used as is."""
    root = base / "project"
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy(ROOT / name, root / name)
    (root / "src").mkdir()
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    return root


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants (worker processes included)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
        todo += _children(p)
    return total / 1024


def timed(root: Path, name: str, *args: str) -> Stage:
    """Run a command in ``root``: wall seconds and the peak of the whole process tree's
    resident memory (sampled every 0.2 s: the modeling pipeline runs worker processes)."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}
    log = root / f".log-{name}"
    print(f"[bench] {name}: {' '.join(args)}", flush=True)
    start = time.perf_counter()
    peak = 0.0
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            peak = max(peak, tree_rss_mib(proc.pid))
            time.sleep(0.2)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(log.read_text()[-8000:])
        raise SystemExit(f"[bench] {name} failed (exit {proc.returncode})")
    shown = " ".join(Path(a).name if a.startswith("/") else a for a in args)
    return Stage(name, shown, [seconds], [peak])


def kedro(root: Path, name: str, *args: str) -> Stage:
    return timed(root, name, str(Path(sys.executable).with_name("kedro")), "run", *args)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_load_seconds(root: Path) -> float:
    from tle_kedro.datasets.tensors import ImageTensorsDataset

    dataset = ImageTensorsDataset(str(root / "data/03_primary/image_tensors"))
    return median_seconds(dataset.load, 7)


def training_throughput(root: Path, steps: int = 6) -> tuple[float, float]:
    """Patients/s of one training step (batch 32, forward + backward + AdamW), median of
    ``steps``: TransEpRelap (conf/base model section) vs a plain MONAI ResNet-18 (2 channels
    in, 1 out, stock widths and stride) trained the same way on the same tensors."""
    import numpy as np
    import torch
    from monai.networks.nets import resnet18

    from tle_kedro.datasets.tensors import ImageTensorsDataset
    from tle_kedro.losses.cox import cox_partial_likelihood
    from tle_kedro.models.batch import from_arrays
    from tle_kedro.models.config import ModelConfig
    from tle_kedro.models.factory import build_model

    tensors = ImageTensorsDataset(str(root / "data/03_primary/image_tensors")).load()
    b = 32
    rng = np.random.default_rng(0)
    vol = tensors.volumes[:b]
    batch = from_arrays(
        vol, np.ones((b, 2), bool), rng.normal(size=(b, 4)),
        np.stack([rng.integers(0, 2, b) for _ in range(11)], 1),
        rng.uniform(1, 30, b), np.arange(b) % 3 == 0,
    )  # fmt: skip
    import yaml

    conf = yaml.safe_load((ROOT / "conf/base/parameters_modeling.yml").read_text())
    config = ModelConfig(**{**conf["modeling"]["model"], "grid_shape": tensors.grid_shape})
    ours = build_model("transeprelap", config, 4, [2] * 11, side_index=1)
    plain = resnet18(spatial_dims=3, n_input_channels=2, num_classes=1)

    def step_fn(model, forward):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

        def step() -> None:
            opt.zero_grad()
            loss = cox_partial_likelihood(forward(model), batch.event, batch.time)
            loss.backward()
            opt.step()

        step()  # warm-up
        return step

    ours_s = median_seconds(step_fn(ours.train(), lambda m: m(batch)), steps)
    plain_s = median_seconds(
        step_fn(plain.train(), lambda m: m(batch.images).squeeze(-1)), max(2, steps // 2)
    )
    return b / ours_s, b / plain_s


def inference_seconds_per_patient(root: Path, n: int = 10) -> tuple[float, float]:
    """The champion loaded from the run's registry, applied one patient at a time to raw
    NIfTI input (validation + registration + normalisation + prediction): (load seconds,
    median seconds per patient over ``n`` patients). Speed only: these patients were in the
    training cohort, which does not change the work done."""
    import mlflow

    from tle_kedro.data.cohort import read_cohort

    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        start = time.perf_counter()
        model = mlflow.pyfunc.load_model("models:/tle_recurrence@champion")
        load = time.perf_counter() - start
        cohort = read_cohort(root / "data/01_raw/cohort")
        frame = cohort.participants.merge(
            cohort.images[["participant_id", "t1_path", "pet_path"]], on="participant_id"
        ).drop(columns=["engel_class", "recurrence", "time_months"])
        model.predict(frame.iloc[[0]])  # warm-up (template loading)
        per = [
            median_seconds(lambda i=i: model.predict(frame.iloc[[i]]), 1) for i in range(1, n + 1)
        ]
    finally:
        mlflow.set_tracking_uri(None)
    return load, statistics.median(per)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), {mem:.0f} GiB RAM, no GPU used; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def target_lines(by: dict[str, Stage], values: dict[str, float], n: int) -> list[str]:
    """The issues' targets beside what this run measured (met / not met, no rounding games)."""
    rows: list[tuple[str, str, float | None, float, bool]] = []  # name, unit, value, target, <=?

    def stage(name: str) -> float | None:
        return by[name].seconds if name in by else None

    analysis = [stage(s) for s in ("data_processing", "feature_engineering", "modeling",
                                   "evaluation", "final_model")]  # fmt: skip
    if stage("demo_cohort") is not None and all(a is not None for a in analysis):
        total = (stage("demo_cohort") or 0) + sum(a or 0 for a in analysis)
        rows.append(("`make run` wall time", "min", total / 60, 10, True))
    if stage("modeling") is not None:
        rows.append(("modeling pipeline wall time", "min", (stage("modeling") or 0) / 60, 6, True))
        rows.append(("modeling peak memory", "GiB", by["modeling"].peak_mib / 1024, 4, True))
    if stage("data_processing") is not None:
        cold = (stage("data_processing") or 0) / n
        rows.append(("cold preprocessing per patient (incl. kedro start)", "s", cold, 1, True))
    rows.append(("warm load of the image tensors", "s", values.get("warm_load"), 2, True))
    rows.append(("inference per patient", "s", values.get("inference"), 2, True))
    if "transeprelap_c" in values and "oracle_c" in values:
        ratio = values["transeprelap_c"] / values["oracle_c"]
        rows.append(("TransEpRelap OOF Harrell C / oracle C", "", ratio, 0.92, False))
    out = [
        "## Targets (from the issues) against this run",
        "",
        "| figure | measured | target | met |",
        "|---|---|---|---|",
    ]
    for name, unit, value, target, at_most in rows:
        if value is None:
            continue
        met = value <= target if at_most else value >= target
        sign = "≤" if at_most else "≥"
        out.append(f"| {name} | {value:.2f} {unit} | {sign} {target:g} {unit} | "
                   f"{'yes' if met else '**no**'} |")  # fmt: skip
    return out


def write_report(
    out: Path,
    stages: list[Stage],
    extra: dict[str, str],
    table: str,
    n: int,
    extra_values: dict[str, float],
) -> None:
    by = {s.name: s for s in stages}
    pipelines = [s for s in stages if s.name in
                 ("data_processing", "feature_engineering", "modeling", "evaluation",
                  "final_model")]  # fmt: skip
    analysis = sum(s.seconds for s in pipelines)
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python benchmarks/run_benchmarks.py`); do not edit by hand.",
        f"Measured on {time.strftime('%Y-%m-%d')}: {machine()}.",
        f"Cohort: the synthetic demo cohort, {n} patients (default parameters).",
        f"Pipeline stages: median wall time of {len(stages[0].runs)} repeat(s), each from "
        "nothing in a fresh copy of the project (the runs are listed); peak memory is the "
        "largest of the repeats. Micro-benchmarks are medians of their own repeats.",
        "",
        "## Pipeline runs",
        "",
        "| step | command | wall time (median) | runs | per patient | peak memory |",
        "|---|---|---|---|---|---|",
    ]
    for s in stages:
        per_patient_stages = ("demo_cohort", "data_processing", "data_processing_warm")
        per = f"{1000 * s.seconds / n:.0f} ms" if s.name in per_patient_stages else ""
        runs = ", ".join(f"{r:.1f}" for r in s.runs)
        lines.append(
            f"| {s.name} | `{s.command}` | {s.seconds:.1f} s | {runs} | {per} "
            f"| {s.peak_mib:.0f} MiB |"
        )
    if pipelines:
        shares = ", ".join(f"{s.name} {100 * s.seconds / analysis:.0f} %" for s in pipelines)
        lines += [
            "",
            "Default pipeline (`kedro run` after the demo cohort), sum of the medians above: "
            f"**{analysis / 60:.1f} min**; shares: {shares}.",
        ]
    if "demo_cohort" in by and pipelines:
        total = by["demo_cohort"].seconds + analysis
        lines.append(
            f"`make run` from nothing (demo cohort + default; five separate kedro start-ups "
            f"included): **{total / 60:.1f} min**"
        )
    lines += ["", "## Micro-benchmarks", "", "| figure | value | how |", "|---|---|---|"]
    for key, value in extra.items():
        lines.append(f"| {key} | {value} |")
    lines += ["", *target_lines(by, extra_values, n)]
    if table:
        lines += ["", "## Model comparison (out-of-fold, this run)", "", table.strip(), ""]
    lines += kept_by_hand(out.read_text() if out.is_file() else "")
    lines += validity_lines(ROOT / "data" / "08_reporting" / "confirmation_summary.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"[bench] wrote {out}")


def kept_by_hand(previous: str) -> list[str]:
    """The sections of the previous report measured by hand (``## ... by hand)`` headings:
    budgets of fresh clones, engine and champion comparisons), so a rerun of ``make bench``
    keeps them instead of losing every measurement it does not repeat itself."""
    kept: list[str] = []
    section: list[str] | None = None
    for line in previous.splitlines():
        if line.startswith("## "):
            if section is not None:
                kept += ["", *section]
            section = [line] if "by hand" in line else None
        elif section is not None:
            section.append(line)
    if section is not None:
        kept += ["", *section]
    # trailing blank lines of each section are re-added as one separator
    return [line for i, line in enumerate(kept) if line or (i + 1 < len(kept) and kept[i + 1])]


def validity_lines(summary: Path) -> list[str]:
    """The design and confirmation comparison (``make design`` / ``make confirm``), as last
    written by the confirmation report; its numbers are the ones a user should trust."""
    if not summary.is_file():
        return [
            "",
            "## Validity",
            "",
            "No `confirmation_summary.md` yet: run `make design` and "
            "`make confirm` (docs/confirmation.md), then `make bench`.",
        ]
    body = summary.read_text(encoding="utf-8").strip()
    if body.startswith("# "):  # the page's own title: this section's heading replaces it
        body = body.split("\n", 1)[1].strip() if "\n" in body else ""
    body = "\n".join(("#" + line) if line.startswith("#") else line for line in body.splitlines())
    return [
        "",
        "## Validity: design and confirmation cohorts",
        "",
        "Copied from `data/08_reporting/confirmation_summary.md` (written by "
        "`make design` / `make confirm`; forest plot `confirmation_forest.png`).",
        "",
        body,
    ]


def same_predictions(tmp: Path, repeats: int) -> str:
    """Whether every repeat wrote identical out-of-fold predictions (determinism)."""
    import pandas as pd

    frames = [
        pd.read_parquet(tmp / f"r{r}/project/data/07_model_output/oof_predictions.parquet")
        for r in range(repeats)
    ]
    worst = max(
        float((f[["risk", "surv_12", "surv_24"]] - frames[0][["risk", "surv_12", "surv_24"]])
              .abs().to_numpy().max())
        for f in frames[1:]
    )  # fmt: skip
    verdict = "yes, identical" if worst == 0.0 else f"**no**: largest difference {worst:.2e}"
    return f"{verdict} | `oof_predictions.parquet` of the {repeats} repeats compared cell by cell"


def pipeline_stages(root: Path, n: int, skip_modeling: bool) -> list[Stage]:
    """One pass from nothing: demo cohort, then each pipeline of the default run."""
    stages = [kedro(root, "demo_cohort", "--pipelines=demo_cohort",
                    f"--params=demo_cohort.n_patients={n}")]  # fmt: skip
    stages.append(kedro(root, "data_processing", "--pipelines=data_processing"))
    stages.append(kedro(root, "data_processing_warm", "--pipelines=data_processing"))
    stages.append(kedro(root, "feature_engineering", "--pipelines=feature_engineering"))
    if not skip_modeling:
        stages.append(kedro(root, "modeling", "--pipelines=modeling"))
        stages.append(kedro(root, "evaluation", "--pipelines=evaluation"))
        stages.append(kedro(root, "final_model", "--pipelines=final_model"))
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-patients", type=int, default=220)
    parser.add_argument("--skip-modeling", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of the pipeline stages")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    n = args.n_patients
    stages: list[Stage] = []
    with tempfile.TemporaryDirectory(prefix="tle-bench-") as tmp:
        for repeat in range(args.repeats):
            print(f"[bench] repeat {repeat + 1} of {args.repeats}", flush=True)
            root = project_copy(Path(tmp) / f"r{repeat}")
            ran = pipeline_stages(root, n, args.skip_modeling)
            stages = ran if not stages else [a.add(b) for a, b in zip(stages, ran, strict=True)]
        extra: dict[str, str] = {}
        values: dict[str, float] = {}
        if args.repeats > 1 and not args.skip_modeling:
            extra["same seed, same out-of-fold predictions"] = same_predictions(
                Path(tmp), args.repeats
            )
        load = warm_load_seconds(root)
        values["warm_load"] = load
        extra["warm load of the image tensors"] = (
            f"{load:.2f} s for {n} patients | `ImageTensorsDataset.load()`, median of 7"
        )
        ours, plain = training_throughput(root)
        extra["training throughput, TransEpRelap (CPU default)"] = (
            f"{ours:.0f} patients/s | batch 32, forward+backward+AdamW, median of 6 steps"
        )
        extra["training throughput, plain MONAI ResNet-18"] = (
            f"{plain:.0f} patients/s ({ours / plain:.1f}× slower than ours) | "
            "`monai.networks.nets.resnet18(spatial_dims=3, n_input_channels=2, num_classes=1)`, "
            "same batch, median of 3 steps"
        )
        from augment_backends import backend_seconds  # benchmarks/augment_backends.py

        from tle_kedro.datasets.tensors import ImageTensorsDataset

        tensors = ImageTensorsDataset(str(root / "data/03_primary/image_tensors")).load()
        aug = backend_seconds(tensors.volumes[:16], tensors.modality_mask[:16])
        extra["augmentation per batch of 16, `torch` backend (default)"] = (
            f"{aug['torch']:.3f} s | every patient augmented (`p_augment: 1`), one thread, "
            "median of 7 (`python benchmarks/augment_backends.py data`)"
        )
        extra["augmentation per batch of 16, `torchio` backend"] = (
            f"{aug['torchio']:.3f} s ({aug['torchio'] / aug['torch']:.1f}× the torch backend)"
            " | same"
        )
        if not args.skip_modeling:
            load, per_patient = inference_seconds_per_patient(root)
            values["inference"] = per_patient
            extra["inference per patient (with preprocessing)"] = (
                f"{per_patient:.2f} s | `models:/tle_recurrence@champion` pyfunc on raw NIfTI "
                f"(validation, registration, prediction), one patient per call, median of 10; "
                f"model load {load:.1f} s once"
            )
        table_path = root / "data/08_reporting/comparison_table.md"
        table = table_path.read_text() if table_path.exists() else ""
        csv_path = root / "data/08_reporting/comparison_table.csv"
        if csv_path.exists():
            import pandas as pd

            comparison = pd.read_csv(csv_path).set_index("model")
            if "transeprelap" in comparison.index and "oracle_c" in comparison.columns:
                values["transeprelap_c"] = float(comparison.loc["transeprelap", "harrell_c"])
                values["oracle_c"] = float(comparison.loc["transeprelap", "oracle_c"])
        write_report(args.out, stages, extra, table, n, values)


if __name__ == "__main__":
    main()
