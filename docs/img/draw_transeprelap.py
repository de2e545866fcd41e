"""Draw TransEpRelap's architecture and trace the tensor shapes through it.

    .venv/bin/python docs/img/draw_transeprelap.py

writes ``docs/img/transeprelap_architecture.png`` and rewrites the two shape tables of
``docs/transeprelap.md`` (between the ``<!-- shapes:<env>:start/end -->`` markers). The
shapes are not typed by hand: the model is built from the project's configuration exactly as
``kedro run`` builds it (``conf/base``, or ``conf/base`` + ``conf/paper`` for the ``paper``
environment), a batch of two patients is passed through it in eval mode, and forward hooks
record what each stage returns. ``tests/test_docs.py`` checks the default table against a
fresh trace.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

PROJECT = Path(__file__).resolve().parents[2]
DOC = PROJECT / "docs" / "transeprelap.md"
PNG = PROJECT / "docs" / "img" / "transeprelap_architecture.png"
BATCH = 2  # patients in the traced batch; shown as "B" in the tables


@dataclass(frozen=True)
class ShapeRow:
    """One stage of the forward pass: its name, the code that runs it, the output shape."""

    stage: str
    module: str
    shape: tuple[int | str, ...]


def load_parameters(env: str | None) -> dict[str, Any]:
    """The parameters ``kedro run [--env=<env>]`` sees (``conf/local`` is not read)."""
    from kedro.config import OmegaConfigLoader

    from tle_kedro.settings import CONFIG_LOADER_ARGS

    args = {**CONFIG_LOADER_ARGS, "default_run_env": "base"}
    loader = OmegaConfigLoader(conf_source=str(PROJECT / "conf"), env=env, **args)
    return dict(loader["parameters"])


def build_from_parameters(params: dict[str, Any]) -> tuple[nn.Module, Any, Any]:
    """TransEpRelap as the modeling pipeline builds it, in eval mode, plus its configs.

    Returns:
        ``(model, model_config, tokenizer)``: the model wrapped in ``IpsilateralView`` (as in
        training), its validated ``ModelConfig`` and the (unfitted) clinical tokenizer.
    """
    from tle_kedro.features.clinical import ClinicalFeatureConfig, ClinicalTokenizer
    from tle_kedro.models.factory import build_model
    from tle_kedro.training.specs import parse_modeling_params

    grid = tuple(int(n) for n in params["preprocessing"]["grid_shape"])
    _, config, _, _, _ = parse_modeling_params(params["modeling"], grid)  # type: ignore[arg-type]
    tokenizer = ClinicalTokenizer(ClinicalFeatureConfig.model_validate(params["clinical_features"]))
    torch.manual_seed(0)
    model = build_model(
        "transeprelap",
        config,
        len(tokenizer.numeric_names),
        tokenizer.cardinalities,
        side_index=tokenizer.side_index,
    )
    return model.eval(), config, tokenizer


def example_batch(config: Any, tokenizer: Any) -> Any:
    """Two patients with both images and every clinical value (one operated left, one right)."""
    from tle_kedro.models.batch import from_arrays

    gen = torch.Generator().manual_seed(0)
    d, h, w = config.grid_shape
    cat = torch.zeros(BATCH, len(tokenizer.cardinalities), dtype=torch.int64)
    cat[1, tokenizer.side_index] = 1
    return from_arrays(
        volumes=torch.randn(BATCH, 2, d, h, w, generator=gen),
        modality_mask=torch.ones(BATCH, 2, dtype=torch.bool),
        clin_num=torch.randn(BATCH, len(tokenizer.numeric_names), generator=gen),
        clin_cat=cat,
    )


def _symbolic(shape: torch.Size) -> tuple[int | str, ...]:
    return ("B", *(int(n) for n in shape[1:]))


def trace_shapes(model: nn.Module, batch: Any) -> list[ShapeRow]:
    """Run ``model(batch)`` once and return the shape after each stage (batch axis = "B")."""
    core: Any = getattr(model, "model", model)  # unwrap IpsilateralView
    rows: list[ShapeRow] = []
    hooks = []

    def record(stage: str, module: str, use_input: bool = False) -> Any:
        def hook(_mod: nn.Module, args: tuple[Any, ...], out: Any) -> None:
            value = args[0] if use_input else (out[0] if isinstance(out, tuple) else out)
            rows.append(ShapeRow(stage, module, _symbolic(value.shape)))

        return hook

    modalities = list(core.modalities)
    for m in modalities:
        name = "T1" if m == "t1" else "PET"
        net = core.encoders.encoders[m].net
        k = net.conv1.kernel_size[0]
        if core.encoders.encoders[m].asymmetry_channel:
            hooks.append(
                net.conv1.register_forward_hook(
                    record(f"{name} encoder input", "image ⊕ x − mirror(x)", use_input=True)
                )
            )
        stages = [
            (net.conv1, f"{name} encoder stem: conv {k}³", "ResNet conv1 + BN + ReLU"),
            (net.maxpool, f"{name} encoder stem: max-pool", "ResNet maxpool"),
            (net.layer1, f"{name} encoder stage 1", "2 basic blocks"),
            (net.layer2, f"{name} encoder stage 2", "2 basic blocks, stride 2"),
            (net.layer3, f"{name} encoder stage 3", "2 basic blocks, stride 2"),
            (net.layer4, f"{name} encoder stage 4", "2 basic blocks, stride 2"),
        ]
        for module, stage, what in stages:
            if module is net.maxpool and net.no_max_pool:
                continue
            hooks.append(module.register_forward_hook(record(stage, what)))
        hooks.append(
            core.encoders.encoders[m].register_forward_hook(
                record(f"{name} feature tokens", "flatten the grid (C order)")
            )
        )
        hooks.append(
            core.image_tokenizers[m].register_forward_hook(
                record(f"{name} tokens", "Linear C→d + modality + 3-D position embedding")
            )
        )
        if m in getattr(core, "measure_tokenizers", {}):
            n_measures = len(core.measures[m].names)
            region = [
                (
                    core.measure_tokenizers[m],
                    f"{name} region-measure tokens",
                    f"{n_measures} regional measures → BatchNorm → value × w + variable emb.",
                )
            ]
            if m in getattr(core, "region_linear", {}):
                region.append(
                    (
                        core.region_linear[m],
                        f"{name} linear measure term",
                        f"Linear({n_measures} → 1) of the standardised measures, "
                        "added to the log-risk",
                    )
                )
            for module, stage, what in region:
                hooks.append(module.register_forward_hook(record(stage, what)))
        if m in core.intra:
            hooks.append(
                core.intra[m].register_forward_hook(
                    record(f"{name} intra-modality attention", "TransformerEncoder")
                )
            )
    if core.clinical is not None:
        hooks.append(
            core.clinical.register_forward_hook(
                record("clinical tokens", "one token per variable (+ missing mask)")
            )
        )
        if "clinical" in core.intra:
            hooks.append(
                core.intra["clinical"].register_forward_hook(
                    record("clinical intra-modality attention", "TransformerEncoder")
                )
            )
    if core.clinical is not None and core.config.clinical_tokens == "pooled":
        # the pooling is a masked mean inside forward, not a module: read it off the joint input
        def pooled(_mod: nn.Module, args: tuple[Any, ...], _out: Any) -> None:
            b, _, d = args[0].shape
            rows.append(ShapeRow("clinical token (pooled)", "masked mean", _symbolic((b, 1, d))))

        hooks.append(core.inter.register_forward_hook(pooled))
    hooks.append(
        core.inter.register_forward_hook(
            record("[summary] + all tokens", "concatenation", use_input=True)
        )
    )
    hooks.append(core.inter.register_forward_hook(record("inter-modality attention", "joint")))
    hooks.append(core.head.register_forward_hook(record("survival head", "LayerNorm → Linear")))
    try:
        with torch.no_grad():
            risk: Tensor = model(batch)
    finally:
        for handle in hooks:
            handle.remove()
    rows.append(ShapeRow("log-risk", "squeeze", _symbolic(risk.shape)))
    images = batch.images
    first = ShapeRow("images (T1, PET channels)", "SurvivalBatch.images", _symbolic(images.shape))
    per_mod = [
        ShapeRow(f"{m.upper()} channel", "one modality", ("B", 1, *images.shape[2:]))
        for m in modalities
    ]
    return [first, *per_mod, *_order(rows)]


def _order(rows: list[ShapeRow]) -> list[ShapeRow]:
    """Encoders run T1 then PET; list each modality's path together, then the rest."""
    order = ["T1", "PET", "clinical", "[summary]", "inter", "survival", "log-risk"]

    def key(row: ShapeRow) -> int:
        return next(i for i, prefix in enumerate(order) if row.stage.startswith(prefix))

    return sorted(rows, key=key)


def format_shape(shape: tuple[int | str, ...]) -> str:
    """``(B, 2, 64)``; a one-axis shape keeps its comma: ``(B,)``."""
    inner = ", ".join(str(n) for n in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def shape_table(rows: list[ShapeRow]) -> str:
    """Markdown table of the traced shapes."""
    lines = ["| stage | what | shape |", "|---|---|---|"]
    lines += [f"| {r.stage} | {r.module} | `{format_shape(r.shape)}` |" for r in rows]
    return "\n".join(lines)


def config_line(config: Any, n_tokens: int) -> str:
    """One line naming the sizes the table was traced with."""
    return (
        f"Traced with grid {tuple(config.grid_shape)}, widths {tuple(config.widths)}, "
        f"conv1 {config.conv1_kernel}³ stride {config.conv1_stride}, "
        f"asymmetry channel {'on' if config.asymmetry_channel else 'off'}, "
        f"clinical tokens {config.clinical_tokens}, d = {config.d_model}, {config.n_heads} heads, "
        f"{config.n_intra_layers} intra + {config.n_inter_layers} inter layer(s), "
        f"feed-forward {config.ff_mult} × d; {n_tokens} tokens per patient "
        f"(1 summary + image{' + region-measure' if config.region_tokens else ''} + clinical)."
    )


def traced_block(env: str | None) -> str:
    """The markdown block (table + config line) for ``env`` (None = the default run)."""
    model, config, tokenizer = build_from_parameters(load_parameters(env))
    rows = trace_shapes(model, example_batch(config, tokenizer))
    joint = next(r for r in rows if r.stage.startswith("[summary]"))
    return shape_table(rows) + "\n\n" + config_line(config, int(joint.shape[1]))


def marker(env: str | None) -> tuple[str, str]:
    name = env or "default"
    return f"<!-- shapes:{name}:start -->", f"<!-- shapes:{name}:end -->"


def read_block(text: str, env: str | None) -> str:
    """The text between the markers of ``env`` in the doc (stripped)."""
    start, end = marker(env)
    match = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, flags=re.S)
    if match is None:
        raise ValueError(f"{DOC} has no {start} … {end} block")
    return match.group(1).strip()


def write_blocks(doc: Path, blocks: dict[str | None, str]) -> None:
    text = doc.read_text(encoding="utf-8")
    for env, block in blocks.items():
        read_block(text, env)  # raises when the markers are missing
        start, end = marker(env)
        pattern = re.escape(start) + r".*?" + re.escape(end)
        replacement = f"{start}\n{block}\n{end}"
        text = re.sub(pattern, replacement.replace("\\", "\\\\"), text, flags=re.S)
    doc.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------- the diagram


def _box(ax: Any, x: float, y: float, w: float, h: float, text: str, color: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#333333",
            linewidth=1.0,
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def _arrow(ax: Any, x0: float, y0: float, x1: float, y1: float) -> None:
    ax.annotate(
        "",
        xy=(x1, y1),
        xytext=(x0, y0),
        arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 1.0},
    )


def _n_image_tokens(config: Any) -> int:
    from tle_kedro.models.encoders import ResNetEncoder

    encoder = ResNetEncoder(**config.encoder_kwargs())  # type: ignore[arg-type]
    d, h, w = encoder.token_grid(config.grid_shape)
    return d * h * w


_CLINICAL_TEXT = (
    "15 tokens, one per variable: value × learned\n"
    "vector (numeric) or embedding (categorical)\n"
    "+ variable emb. + modality emb.\n"
    "a missing value is a masked token"
)
_JOINT_TEXT = "[summary] + all tokens\ninter-modality joint\nattention (key-padding\nmask)"
_HEAD_TEXT = "summary token\nLayerNorm → Linear\nlog-risk (Cox)\n+ Breslow → S(t | x)"
_FOOTNOTE = (
    "Ipsilateral view: right-operated patients are mirrored left–right before the encoders. "
    "A missing or dropped modality is removed\nfrom attention (its encoder does not run); "
    "a missing clinical value is a masked token, never a zero. Sizes: CPU default [paper env].\n"
    "Each encoder sees the image and its left–right difference x − mirror(x). The CPU default "
    "pools the clinical tokens into one after their self-attention.\n"
    "Region-measure tokens: the regional asymmetry measures a reader takes (PET asymmetry "
    "indices, T1 mesial-temporal asymmetry), computed from the images in the model."
)


def draw(path: Path, default: Any, paper: Any) -> None:
    """Draw the architecture (sizes of the default run, paper sizes in brackets)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 6.2)
    ax.axis("off")
    img, tok, att, head = "#dbe9f6", "#e5f3df", "#fdebd0", "#f5d5d5"
    widths = "-".join(map(str, default.widths))
    enc = f"3-D ResNet-18\nwidths {widths}\n[paper {'-'.join(map(str, paper.widths))}]"
    n_img, p_img = _n_image_tokens(default), _n_image_tokens(paper)
    for label, y, n_measures in (("T1 MRI", 5.0, 2), ("FDG PET", 3.6, 4)):
        tokens = (
            f"{n_img} tokens [{p_img}]:\nLinear → d = {default.d_model} [{paper.d_model}]\n"
            "+ modality, position emb.\n"
            + (f"+ {n_measures} region-measure tokens" if default.region_tokens else "")
        )
        _box(ax, 0.1, y, 1.5, 0.8, f"{label}\ncrop around both\ntemporal lobes", img)
        _box(ax, 2.0, y, 1.7, 0.8, enc, img)
        _box(ax, 4.1, y, 1.9, 0.8, tokens, tok)
        _arrow(ax, 3.7, y + 0.4, 4.1, y + 0.4)
    for y in (5.0, 3.6, 2.2):
        _box(ax, 6.4, y, 1.6, 0.8, "intra-modality\nself-attention", att)
        _arrow(ax, 1.6, y + 0.4, 2.0, y + 0.4)
        _arrow(ax, 6.0, y + 0.4, 6.4, y + 0.4)
        _arrow(ax, 8.0, y + 0.4, 8.5, 3.45)
    _box(ax, 0.1, 2.2, 1.5, 0.8, "clinical table\n4 numeric,\n11 categorical", img)
    _box(ax, 2.0, 2.2, 4.0, 0.8, _CLINICAL_TEXT, tok)
    _box(ax, 8.5, 2.9, 2.35, 1.1, _JOINT_TEXT, att)
    head_text = _HEAD_TEXT
    if default.region_linear:
        head_text = head_text.replace(
            "log-risk (Cox)", "+ linear term of the\nregion measures\n= log-risk (Cox)"
        )
    head_h = 1.3 if default.region_linear else 1.1
    _box(ax, 8.5, 1.2, 2.35, head_h, head_text, head)
    _arrow(ax, 9.675, 2.9, 9.675, 1.2 + head_h)
    ax.text(0.1, 0.55, _FOOTNOTE, fontsize=8, color="#333333")
    ax.set_title("TransEpRelap", fontsize=12, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite the doc tables")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _, default, _ = build_from_parameters(load_parameters(None))
    _, paper, _ = build_from_parameters(load_parameters("paper"))
    draw(PNG, default, paper)
    if not args.no_doc:
        write_blocks(DOC, {None: traced_block(None), "paper": traced_block("paper")})


if __name__ == "__main__":
    main()
