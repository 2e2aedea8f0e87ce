"""PyTorch reference for the train-step benchmark: transformers' Molmo2 trained with torch AdamW on the same batch.

The model is `Molmo2ForConditionalGeneration` built from a random config (`hf_config`); bench_train_step saves
it and loads the same weights into JAX, so both sides train the same model on the same batch: fp32, or with
`--dtype bfloat16` under bf16 autocast (as PyTorch users train on GPUs), on the GPU when there is one. Frozen
ViT (no gradients for the vision tower), loss on the batch's labels (transformers' own shift).
"""

from __future__ import annotations

import resource
import time

import numpy as np

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=4, head_dim=8, image_size=[56, 56], patch_size=14)
# Molmo2's special tokens live in the extra-vocabulary rows after the base vocabulary
SPECIAL = ("image_start_token_id", "image_end_token_id", "image_patch_id", "image_col_token_id",
           "low_res_image_start_token_id", "frame_start_token_id", "frame_end_token_id")


def hf_config(model: str = "tiny", vocab_size: int = 151_936):
    """A random transformers Molmo2Config: `tiny` (small decoder, real vocabulary) or `nano` (Qwen3-0.6B +
    so400m shapes)."""
    from transformers import Molmo2Config

    if model == "tiny":
        text = dict(hidden_size=96, num_attention_heads=4, num_key_value_heads=2, head_dim=24, num_hidden_layers=3,
                    intermediate_size=192)
        vision = VISION
        adapter = dict(vision_feature_layer=[-1, 0], hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                       head_dim=8, intermediate_size=192, text_hidden_size=96)
    elif model == "nano":
        text = dict(hidden_size=1024, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
                    num_hidden_layers=28, intermediate_size=3072)
        vision = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=25, num_attention_heads=16,
                      num_key_value_heads=16, head_dim=72, image_size=[378, 378], patch_size=14)
        adapter = dict(vision_feature_layer=[-3, -9], hidden_size=1152, num_attention_heads=16,
                       num_key_value_heads=16, head_dim=72, intermediate_size=3072, text_hidden_size=1024)
    else:
        raise ValueError(f"unknown benchmark model {model!r}: tiny or nano")
    text.update(vocab_size=vocab_size, additional_vocab_size=128,
                rope_parameters=dict(rope_type="default", rope_theta=1_000_000.0))
    ids = {name: vocab_size + i for i, name in enumerate(SPECIAL)}
    return Molmo2Config(vision_config=vision, adapter_config=adapter, text_config=text, **ids)


def build(config, path: str | None = None, seed: int = 0):
    """The random torch model (saved to `path` for the JAX side when given)."""
    import torch
    from transformers import Molmo2ForConditionalGeneration

    torch.manual_seed(seed)
    model = Molmo2ForConditionalGeneration(config)
    if path:
        model.save_pretrained(path)
    return model


def load(path: str):
    """The model `build` saved to `path` (fp32), as the isolated PyTorch child loads it."""
    import torch
    from transformers import Molmo2ForConditionalGeneration

    return Molmo2ForConditionalGeneration.from_pretrained(path, dtype=torch.float32)


def train_steps(model, batch: dict, steps: int, lr: float = 1e-4, dtype: str = "float32") -> dict:
    """`steps` AdamW steps (frozen vision tower) on one batch (all its rows in one forward/backward), on the GPU
    when there is one, under bf16 autocast when `dtype` is bfloat16 (fp32 weights and optimizer): the
    `StepMeter` medians after the first step, the losses, and the GPU's peak allocated bytes."""
    import torch

    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for name, p in model.named_parameters():
        p.requires_grad_("vision_tower" not in name)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.95),
                            eps=1e-6, weight_decay=0.0)
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}
    model.train()
    meter, losses = StepMeter(), []
    for _ in range(steps):
        with meter:
            with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            sync()  # the optimizer's kernels finish inside the timed step
    out = dict(meter.medians(), losses=losses, device=device)
    if device == "cuda":
        out.update(device=torch.cuda.get_device_name(), device_peak_bytes=int(torch.cuda.max_memory_allocated()))
    return out


class StepMeter:
    """Per-step wall, process-CPU and kernel (system) seconds and page faults, as a context manager.

    Both sides of the benchmark are timed with it. The kernel share says how much of a step went to the
    machine's memory handling (fresh pages zeroed on first touch) rather than to the model's arithmetic: on
    a VM that hands freed memory back to its host, a step that allocates large buffers anew pays this every step.
    """

    def __init__(self):
        self.rows = []

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF))
        return self

    def __exit__(self, *exc):
        t0, c0, r0 = self._start
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.rows.append((time.perf_counter() - t0, time.process_time() - c0, r1.ru_stime - r0.ru_stime,
                          r1.ru_minflt - r0.ru_minflt))

    def medians(self) -> dict:
        """step_s, cpu_s, sys_s, page_faults: medians over the steps after the first."""
        cols = list(zip(*self.rows))
        return {k: median_after_first(v) for k, v in zip(("step_s", "cpu_s", "sys_s", "page_faults"), cols)}


def median_after_first(values) -> float:
    """The median of per-step figures, the first (warm-up) step left out when there are others."""
    return float(np.median(values[1:] if len(values) > 1 else values))
