"""The official Molmo2 recipe as data: every stage hyper-parameter, its allenai/molmo2 value and source file.

Each row says where a config key's official value comes from; `departure` says why our stage config differs
(empty = it must not differ: tests/test_recipe_doc.py fails otherwise). `describe(config)` prints a config's
resolved schedule and mixture (used by `--inspect`); `scripts/make_recipe_doc.py` writes docs/recipe.md.
Sources are paths in github.com/allenai/molmo2 @ f3cb1085 unless they name another repository.
"""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
from typing import Any

PRETRAIN = "launch_scripts/pretrain.py"
SFT = "launch_scripts/sft.py"
OPTIM = "olmo/train/optim.py"
README_LC = "README.md (Long-Context SFT: sft.py --max_duration=2000 --seq_len=36864 max_frames=384)"

FROZEN_VIT = ("nanoMolmo2 freezes the ViT by default (fits 2-4 A100s, 30-40% faster); "
              "`--config.freeze_vit=False` trains it as Molmo2 does")
NANO = "nanoMolmo2 = Qwen3-0.6B + SigLIP2; the released families are presets molmo2-4b / molmo2-8b / molmo2-o-7b"
SEED = "one seed for init, data order and dropout (shared/interfaces.md); Molmo2 uses 6198 (model) and 95818 (data)"


@dataclasses.dataclass(frozen=True)
class Row:
    """One hyper-parameter: config key (or `optimizer.<arg>` of train.make_optimizer), official value, source."""

    key: str
    official: Any
    source: str
    departure: str = ""


def _common(src: str) -> list[Row]:
    return [
        Row("lr_final_fraction", 0.1, f"{src} SchedulerConfig(alpha_f=0.1)"),
        Row("weight_decay", 0.0, f"{OPTIM} OptimizerConfig.*_weight_decay = 0.0"),
        Row("grad_clip", 1.0, f"{src} max_grad_norm=1"),
        Row("z_loss", 1e-4, f"{src} softmax_auxiliary_loss_scale=1e-4 (over the loss mask)"),
        Row("optimizer.b1", 0.9, f"{OPTIM} OptimizerConfig.*_betas = (0.9, 0.95)"),
        Row("optimizer.b2", 0.95, f"{OPTIM} OptimizerConfig.*_betas = (0.9, 0.95)"),
        Row("optimizer.eps", 1e-6, f"{OPTIM} OptimizerConfig.*_eps = 1e-6"),
        Row("dtype", "bfloat16", f"{src} precision=amp_bf16 (fp32 master weights)"),
        Row("model.name", "qwen3_4b_instruct | qwen3_8b | olmo3_7b_instruct", "olmo/model_configs.py LLMS", NANO),
        Row("seed", 6198, f"{src} TrainConfig(seed=6198)", SEED),
        Row("data.max_crops_per_image", 8, f"{PRETRAIN} MultiCropConfig(max_crops=8) for siglip2"),
    ]


OFFICIAL: dict[int, list[Row]] = {
    1: [
        Row("total_steps", 31_000, f"{PRETRAIN} duration = 31000 (with nlp > 0)"),
        Row("warmup_steps", 200, f"{PRETRAIN} connector_t_warmup=200"),
        Row("component_warmup_steps.connector", 200, f"{PRETRAIN} connector_t_warmup=200"),
        Row("component_warmup_steps.vit", 2000, f"{PRETRAIN} vit_t_warmup=2000"),
        Row("component_warmup_steps.llm", 2000, f"{PRETRAIN} llm_t_warmup=2000"),
        Row("batch_size", 128, f"{PRETRAIN} --global_batch_size 128"),
        Row("seq_len", 2536, f"{PRETRAIN} --seq_len 2536"),
        Row("learning_rate.connector", 2e-4, f"{PRETRAIN} connector_learning_rate=2e-4"),
        Row("learning_rate.vit", 6e-6, f"{PRETRAIN} vit_learning_rate=6e-6"),
        Row("learning_rate.llm", 2e-5, f"{PRETRAIN} llm_learning_rate=2e-5"),
        Row("freeze_vit", False, f"{PRETRAIN} ft_vit=True", FROZEN_VIT),
        Row("residual_dropout", 0.0, f"{PRETRAIN} replace(LLMS[...], residual_dropout=0.0)"),
        Row("response_residual_dropout", 0.1, f"{PRETRAIN} response_residual_dropout=0.1"),
        Row("checkpoint_every", 4000, f"{PRETRAIN} save_interval=4000",
            "smaller clusters are preempted more often: save every 1,000 steps"),
        Row("data.mixture", "stage1", f"{PRETRAIN} kwargs_mixture"),
        Row("data.weights", {"captions": 0.6, "pointing": 0.3, "nlp": 0.1},
            f"{PRETRAIN} KwargsMixture(1 - pointing - nlp) / (--pointing 0.3) / (--nlp 0.1)"),
        Row("data.max_crops", 16, f"{PRETRAIN} VideoPreprocessorConfig(max_frames=16): 16 crops per pack",
            "the 4 rows of a micro-batch share one crop stack of 4 x 10 slots (data.crop_group_rows=4): 90% of "
            "the ViT's slots are real crops vs 57% with 16 per pack, same examples (docs/benchmarks.md)"),
        Row("data.crop_group_rows", 1, f"{PRETRAIN} one crop budget per pack",
            "rows of a micro-batch share one crop budget so the ViT runs on real crops, not padding"),
        Row("grad_accum_steps", 4, f"{PRETRAIN} device_train_microbatch_size=4: on 8 GPUs each device's 16 "
            "sequences run as 4 micro-batches of 4, each loss divided by the global batch's weight "
            "(batch_divisor=global_batch)"),
        Row("data.system_prompt", "style_and_length_v2", f"{PRETRAIN} DataFormatter(system_prompt=...); "
            "olmo/preprocessing/data_formatter.py get_system_prompt"),
        *_common(PRETRAIN),
    ],
    2: [
        Row("total_steps", 300_000, f"{SFT} max_duration=300000",
            "sft.py's max_duration is a ceiling (the run is stopped with stop_at); Molmo2's SFT ran ~30k steps "
            "(paper, shared/molmo2_reference.md section 8), which is what we configure"),
        Row("warmup_steps", 200, f"{SFT} *_t_warmup=200"),
        Row("component_warmup_steps.connector", 200, f"{SFT} connector_t_warmup=200"),
        Row("component_warmup_steps.vit", 200, f"{SFT} vit_t_warmup=200"),
        Row("component_warmup_steps.llm", 200, f"{SFT} llm_t_warmup=200"),
        Row("batch_size", 128, f"{SFT} global_train_batch_size=128"),
        Row("seq_len", 16_384, f"{SFT} --seq_len 16384"),
        Row("learning_rate.connector", 5e-6, f"{SFT} connector_learning_rate=5e-6"),
        Row("learning_rate.vit", 5e-6, f"{SFT} vit_learning_rate=5e-6"),
        Row("learning_rate.llm", 1e-5, f"{SFT} llm_learning_rate=1e-5"),
        Row("freeze_vit", False, f"{SFT} ft_vit=True", FROZEN_VIT),
        Row("residual_dropout", 0.1, f"{SFT} get_model: llm.residual_dropout = 0.1"),
        Row("response_residual_dropout", 0.0, f"{SFT} get_model: llm.response_residual_dropout = 0.0"),
        Row("data.mixture", "stage2", f"{SFT} get_training_mixture('molmo2')"),
        Row("data.weights", {}, f"{SFT} get_training_mixture('molmo2') group rates = registry.STAGE_GROUP_RATES[2]"),
        Row("data.max_frames", 128, f"{SFT} get_model: VideoPreprocessorConfig(max_frames=128)"),
        Row("data.p_high_res", 0.3, f"{SFT} pointing_high_res = 0.30 (override_p_high_res of image pointing)"),
        Row("data.high_res_max_crops", 24, "olmo/preprocessing/multicrop_preprocessor.py high_res_max_crops=24"),
        Row("data.high_res_datasets", ("pixmo_multi_points", "pixmo_points_train", "pixmo_count_train",
                                       "pixmo_points_high_freq_train", "cosyn_point"),
            f"{SFT} image_pointing WeightedDatasets with override_p_high_res"),
        *_common(SFT),
    ],
}
OFFICIAL[3] = [r for r in OFFICIAL[2] if r.key not in ("total_steps", "seq_len", "data.max_frames", "data.mixture")]
OFFICIAL[3] += [
    Row("total_steps", 2_000, README_LC),
    Row("seq_len", 36_864, README_LC),
    Row("data.max_frames", 384, README_LC),
    Row("data.mixture", "stage3", f"{README_LC}; registry.STAGE_MIXTURES[3] = the SFT mixture"),
]

def config_value(config, key: str) -> Any:
    """A row's value in our config (`optimizer.*` are train.make_optimizer's defaults)."""
    if key.startswith("optimizer."):
        from molmo2_jax import train

        return pyinspect.signature(train.make_optimizer).parameters[key.split(".", 1)[1]].default
    value = config
    for part in key.split("."):
        value = value[part]
    return dict(value) if hasattr(value, "to_dict") else value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def undocumented_departures(stage: int, config) -> list[str]:
    """Rows whose config value differs from the official one with no departure reason."""
    return [f"stage {stage} {r.key}: ours {config_value(config, r.key)!r}, official {r.official!r} ({r.source})"
            for r in OFFICIAL[stage] if not r.departure and not same(config_value(config, r.key), r.official)]


def schedule_table(stage: int, config) -> list[str]:
    """Markdown rows: key | ours | official | source | why it differs."""
    lines = ["| key | ours | official | source | departure |", "|---|---|---|---|---|"]
    for r in OFFICIAL[stage]:
        ours = config_value(config, r.key)
        why = r.departure if not same(ours, r.official) else ""
        lines.append(f"| `{r.key}` | {ours!r} | {r.official!r} | {r.source} | {why} |")
    return lines


def mixture_rows(config) -> list[tuple[str, str, float, float | None, int | None]]:
    """(dataset, group, group share, share, examples/epoch) from registry sizes (share None: a size is unknown).

    Shares follow `data_pipelines.mixture.mixture_weights` (group rate x sqrt(Molmo2 len) x per-set rate, normalised
    in the group), given only for groups whose every size the registry knows; the trainer recomputes them from the
    prepared data.
    """
    from data_pipelines import mixture, registry

    stage = mixture._stage_of(config.data.mixture)
    entries, rates = mixture.config_entries(stage, dict(config.data.weights))
    total_rate = sum(rates.values())
    sizes = {e.dataset: registry.REGISTRY[e.dataset].size for e in entries}
    rows = []
    for group, rate in rates.items():
        members = [e for e in entries if e.group == group]
        # a root_size_factor of 0 or >= 1 fixes the size term: no size needed
        known = all(sizes[e.dataset] or (e.root_size_factor is not None and (e.root_size_factor == 0
                                                                             or e.root_size_factor >= 1))
                    for e in members)
        terms = {e.dataset: mixture.size_term(mixture.molmo2_len(e.dataset, sizes[e.dataset] or 1),
                                              e.root_size_factor) * e.sampling_rate for e in members} if known else {}
        for e in members:
            n = None if sizes[e.dataset] is None else mixture.molmo2_len(e.dataset, sizes[e.dataset])
            share = rate / total_rate * terms[e.dataset] / sum(terms.values()) if known else None
            rows.append((e.dataset, group, rate / total_rate, share, n))
    return rows


def describe(config) -> str:
    """What --inspect prints for a stage config: the schedule per component and the resolved mixture."""
    from molmo2_jax import train

    warm = {c: dict(config.get("component_warmup_steps", {})).get(c, config.warmup_steps) for c in train.COMPONENTS}
    lines = [f"schedule: {config.total_steps:,} steps, batch {config.batch_size}, seq_len {config.seq_len}; "
             f"z_loss {config.z_loss}; residual dropout {config.get('residual_dropout', 0.0)} "
             f"(response tokens {config.get('response_residual_dropout', 0.0)}); freeze_vit {config.freeze_vit}"]
    for c in train.COMPONENTS:
        lines.append(f"  lr[{c}]: peak {config.learning_rate[c]:g}, warmup {warm[c]:,} steps, cosine to "
                     f"{config.lr_final_fraction:g} x peak")
    if str(config.data.mixture) in ("synthetic", "demo"):
        return "\n".join(lines)
    if config.data.path:
        from data_pipelines.mixture import MissingDatasets

        from molmo2_jax.data import prepared_mixture
        try:
            weights, missing = prepared_mixture(config)
            lines.append(f"mixture (prepared under {config.data.path}; missing: {missing or 'none'}):")
            lines += [f"  {n:44s} {w:7.4f}" for n, w in sorted(weights.items(), key=lambda kv: -kv[1])]
            return "\n".join(lines)
        except MissingDatasets as e:
            lines.append(f"mixture: {e}")
    lines.append("mixture (dataset, group, group share, share, examples/epoch; registry sizes, '-' = known once "
                 "prepared):")
    for name, group, rate, share, n in mixture_rows(config):
        lines.append(f"  {name:44s} {group:16s} {rate:6.4f} {'-' if share is None else f'{share:7.4f}':>7s} "
                     f"{'?' if n is None else n:>10}")
    return "\n".join(lines)
