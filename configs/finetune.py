"""Fine-tune Molmo2 on your own JSONL data (schema: data_pipelines/readers/user_jsonl.py), LoRA or full.

COMMAND: python -m molmo2_jax.main --config configs/finetune.py --config.init.checkpoint=CKPT --config.data.path=a.jsonl

`init.checkpoint` is an HF Molmo2 directory or one of ours (`runs/<x>/model`); `lora.rank=0` is full
fine-tuning of the components not frozen (`freeze.vit/connector/llm`). The run checks every line of the
JSONL first (`data.skip_bad=True`: train on the good ones), and ends with `model/` (merged weights, for
generate / evaluate / `convert --to-hf`) and, for LoRA, `adapters/` (the adapters alone).
"""

from configs.common import base_config
from molmo2_jax.lora import DECODER_TARGETS


def get_config():
    c = base_config()
    c.init.checkpoint = ""  # HF Molmo2 dir or ours; empty = a random `model.name` (only for smoke tests)
    c.total_steps = 200
    c.warmup_steps = 10
    c.batch_size = 8
    c.seq_len = 2536
    c.learning_rate.connector = 1e-4
    c.learning_rate.vit = 1e-4
    c.learning_rate.llm = 1e-4
    c.lr_final_fraction = 0.1
    c.freeze_vit = False  # use freeze.vit
    c.freeze = {"vit": True, "connector": False, "llm": False}  # full fine-tuning only (LoRA trains adapters)
    c.lora = {
        "rank": 16,  # 0 = full fine-tuning
        "alpha": 32.0,  # adapters add x @ A @ B * alpha / rank
        "targets": DECODER_TARGETS,  # regex over module paths (re.fullmatch), e.g. add "|connector/.*"
        "weight_qtype": "",  # QLoRA: quantize the frozen kernels ("int8", "nf4"); "" = off
    }
    c.checkpoint_every = 100
    c.keep_checkpoints = 2
    c.log_every = 10
    c.data.mixture = "jsonl"
    c.data.path = ""  # your .jsonl file (media paths relative to it)
    c.data.skip_bad = False  # True: train on the good lines, report the bad ones; False: stop with the report
    c.data.max_crops = 16
    c.data.max_crops_per_image = 8
    c.data.window = 16
    return c
