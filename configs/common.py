"""Defaults every stage config shares (the keys users override are listed in shared/interfaces.md)."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"name": "nano"})
    c.init = ml_collections.ConfigDict({"checkpoint": ""})
    c.total_steps = 1000
    c.warmup_steps = 100
    c.batch_size = 8
    c.seq_len = 2536
    c.grad_accum_steps = 1
    c.learning_rate = ml_collections.ConfigDict({"connector": 2e-4, "vit": 6e-6, "llm": 2e-5})
    c.lr_final_fraction = 0.1
    c.freeze_vit = True
    c.weight_decay = 0.0
    c.grad_clip = 1.0
    c.z_loss = 0.0  # Molmo2 softmax_auxiliary_loss_scale (over the loss mask); stage configs set 1e-4
    c.component_warmup_steps = ml_collections.ConfigDict({})  # {vit/connector/llm: steps}; absent = warmup_steps
    c.residual_dropout = 0.0  # on the residual branches of every LLM block (Molmo2 SFT: 0.1)
    c.response_residual_dropout = 0.0  # the same, on response (loss) tokens only (Molmo2 pre-training: 0.1)
    c.max_consecutive_nonfinite = 5
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "sequence": 1})
    c.attention_impl = "xla"
    c.attention_block_size = 512  # query/key block of blockwise / ring / Ulysses attention (memory O(T x block))
    c.remat = "none"  # "none" | "block" | "dots" (qwen3.REMAT_POLICIES)
    c.scan_layers = True  # decoder layers as one lax.scan (compile time flat in depth); False: a Python loop
    # This process's JAX CPU devices (0 = JAX's default, one). A CPU run whose step cannot keep every core busy
    # splits its batch over several (mesh.data) and runs them side by side (the 2-core demo: docs/benchmarks.md).
    c.cpu_devices = 0
    # Linux/glibc: restart the process once with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, so malloc asks for
    # transparent huge pages: XLA:CPU maps each step's temporaries afresh, and 4 KiB page faults were a fifth of
    # the demo's CPU time. Only the `python -m molmo2_jax.main` entry point does this.
    c.cpu_hugepages = False
    c.dtype = "bfloat16"
    c.checkpoint_every = 1000
    c.keep_checkpoints = 3
    c.keep_every = 0  # also keep every K-th step's checkpoint (0 = off)
    c.log_every = 10
    c.eval_every = 0
    c.seed = 0
    c.data = ml_collections.ConfigDict({
        "mixture": "stage1",
        "path": "",
        "weights": {},
        "max_crops": 64,  # crops per packed sequence (all its examples together)
        "crop_group_rows": 1,  # packed rows sharing one crop stack of rows x max_crops slots (issue #18)
        "max_crops_per_image": 8,  # Molmo2's max_crops: high-res crops of one image
        "max_frames": 0,
        "window": 64,
        "num_workers": 0,
        "allow_missing": False,  # True: train without mixture datasets missing from data.path (logged + metrics)
        "system_prompt": "",  # "style_and_length_v2" = Molmo2 stage-1 prompt styles (processing.encode)
        "max_consecutive_skips": 256,  # a dataset skipping this many records in a row stops the run
    })
    return c
