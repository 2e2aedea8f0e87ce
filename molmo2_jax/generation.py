"""Generation: prefill (bidirectional vision block) + KV-cache decode; greedy or temperature/top-p sampling.

    answer = molmo2_jax.generate(model, processor, "Point to the cats", images=["a.jpg"])   # this `generate`
    python -m molmo2_jax.generate --checkpoint DIR --image a.jpg --prompt "Point to the cats" [--out a.png]

The CLI module `molmo2_jax/generate.py` only calls `main` here, so the package attribute
`molmo2_jax.generate` stays this function.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from molmo2_jax.model import Molmo2
from molmo2_jax.qwen3 import KVCache

PROMPT_BUCKETS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 36864)


def bucket(n: int, buckets: Sequence[int] = PROMPT_BUCKETS) -> int:
    """Smallest bucket >= n, so jit compiles a handful of shapes rather than one per prompt."""
    for b in buckets:
        if b >= n:
            return b
    return int(2 ** np.ceil(np.log2(n)))


def left_pad(rows: Sequence[np.ndarray], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad 1-D token rows to `length`; returns (ids [B, L], mask [B, L])."""
    ids = np.full((len(rows), length), pad_id, np.int32)
    mask = np.zeros((len(rows), length), np.int32)
    for i, r in enumerate(rows):
        ids[i, length - len(r):] = r
        mask[i, length - len(r):] = 1
    return ids, mask


def sample_token(logits: jax.Array, key: jax.Array, temperature: float, top_p: float) -> jax.Array:
    """Greedy when temperature == 0, else temperature + nucleus (top-p) sampling; logits [B, V] -> [B]."""
    if temperature <= 0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    logits = logits.astype(jnp.float32) / temperature
    if top_p < 1.0:
        sorted_logits = jnp.sort(logits, -1)[:, ::-1]
        probs = jax.nn.softmax(sorted_logits, -1)
        cutoff_idx = jnp.sum(jnp.cumsum(probs, -1) < top_p, -1, keepdims=True)
        cutoff = jnp.take_along_axis(sorted_logits, cutoff_idx, -1)
        logits = jnp.where(logits < cutoff, -jnp.inf, logits)
    return jax.random.categorical(key, logits, -1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "top_p"))
def _prefill(graphdef, state, batch: dict, cache: KVCache, key, temperature: float, top_p: float):
    logits, cache = nnx.merge(graphdef, state)(**batch, cache=cache)
    return sample_token(logits[:, -1], key, temperature, top_p), logits[:, -1], cache


@functools.partial(jax.jit, static_argnames=("graphdef", "steps", "temperature", "top_p"), donate_argnums=(4,))
def _decode_chunk(graphdef, state, tokens, positions, cache: KVCache, key, done, stop_ids, pad_id, steps: int,
                  temperature: float, top_p: float):
    """`steps` decode steps in one compiled scan; rows that hit a stop token emit `pad_id` afterwards."""
    model = nnx.merge(graphdef, state)
    b = tokens.shape[0]
    ones, zeros = jnp.ones((b, 1), jnp.int32), jnp.zeros((b, 1), jnp.int32)

    def step(carry, _):
        tok, pos, cache, key, done = carry
        key, sub = jax.random.split(key)
        logits, cache = model(tok[:, None], segment_ids=ones, position_ids=pos[:, None], mm_token_type_ids=zeros,
                              cache=cache)
        nxt = sample_token(logits[:, -1], sub, temperature, top_p)
        nxt = jnp.where(done, pad_id, nxt)
        done = done | jnp.isin(nxt, stop_ids)
        return (nxt, pos + 1, cache, key, done), (nxt, logits[:, -1])

    carry, (toks, logits) = jax.lax.scan(step, (tokens, positions, cache, key, done), None, length=steps)
    return carry, toks.T, jnp.swapaxes(logits, 0, 1)


def check_prompt_length(prompt_tokens: int, max_new_tokens: int, max_positions: int) -> None:
    """Refuse (one-line ValueError) a prompt that cannot fit the model's positions before allocating its cache."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if prompt_tokens + max_new_tokens > max_positions:
        raise ValueError(f"the prompt is {prompt_tokens} tokens (text + image/video tokens); with {max_new_tokens} new "
                         f"tokens that exceeds the model's {max_positions} positions: shorten the prompt, use fewer "
                         "images/frames or lower --max-new-tokens")


def check_cli_args(args: argparse.Namespace) -> str | None:
    """The first problem with generate's command line (the message for a one-line `error:`), or None."""
    if args.max_new_tokens < 1:
        return f"--max-new-tokens must be >= 1, got {args.max_new_tokens}"
    if args.temperature < 0 or args.temperature != args.temperature:
        return f"--temperature must be >= 0 (0 = greedy), got {args.temperature}"
    if args.greedy and args.temperature > 0:
        return f"--greedy and --temperature {args.temperature} contradict each other; pass one of them"
    if not 0 < args.top_p <= 1:
        return f"--top-p must be in (0, 1], got {args.top_p}"
    if args.out and os.path.isdir(args.out):
        return f"--out {args.out} is a directory; pass a .png file path"
    return None


def check_prompt_text(prompt: str, special_tokens) -> None:
    """Refuse user text containing Molmo2's special tokens (e.g. a literal `<im_patch>`): only the processor
    may write them, and a forged one would shift the image tokens."""
    found = sorted(t for t in special_tokens if t and t in prompt)
    if found:
        raise ValueError(f"the prompt contains the special token(s) {', '.join(found)}, which only the processor "
                         "writes; remove them or change their spelling (e.g. '< im_patch >')")


def generate_tokens(model: Molmo2, batch: dict, max_new_tokens: int, *, stop_ids: Sequence[int] = (),
                    temperature: float = 0.0, top_p: float = 1.0, seed: int = 0, pad_id: int = 0,
                    return_logits: bool = False, chunk: int = 16):
    """Generate for one prompt batch (`input_ids` [B, T], optional `attention_mask` for left padding).

    Prefill is one compiled call per prompt bucket; decoding runs `chunk` steps per compiled call and stops
    after the chunk in which every row produced a stop token. Returns new tokens [B, N] (rows that stopped
    early are padded with `pad_id`), and the logits of every step [B, N, V] when `return_logits`.
    """
    ids = np.asarray(batch["input_ids"], np.int32)
    b, t = ids.shape
    check_prompt_length(t, max_new_tokens, model.cfg.text.max_position_embeddings)
    mask = np.asarray(batch.get("attention_mask", np.ones_like(ids)), np.int32)
    length = bucket(t)
    pad = length - t
    inputs = {k: jnp.asarray(v) for k, v in batch.items() if k not in ("attention_mask", "input_ids", "image_grids",
                                                                        "video_grids", "image_num_crops")}
    inputs["input_ids"] = jnp.asarray(np.pad(ids, ((0, 0), (pad, 0)), constant_values=pad_id))
    seg = np.pad(mask, ((0, 0), (pad, 0)))
    inputs["segment_ids"] = jnp.asarray(seg)
    positions = np.maximum(np.cumsum(seg, 1) - 1, 0).astype(np.int32)
    inputs["position_ids"] = jnp.asarray(positions)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = jnp.pad(inputs["mm_token_type_ids"], ((0, 0), (pad, 0)))
    steps_needed = max_new_tokens - 1
    n_chunks = -(-steps_needed // chunk) if steps_needed > 0 else 0
    cache = KVCache.init(model.cfg.text, b, bucket(length + n_chunks * chunk + 1), model.dtype)
    graphdef, state = nnx.split(model)
    key, sub = jax.random.split(jax.random.key(seed))
    token, logits, cache = _prefill(graphdef, state, inputs, cache, sub, temperature, top_p)
    stops = jnp.asarray(list(stop_ids) or [-1], jnp.int32)
    done = jnp.isin(token, stops)
    carry = (token, jnp.asarray(positions[:, -1] + 1), cache, key, done)
    out = [np.asarray(token)[:, None]]
    all_logits = [np.asarray(logits)[:, None]] if return_logits else []
    for _ in range(n_chunks):
        if bool(np.all(np.asarray(carry[4]))):
            break
        tok, pos, cache, key, done = carry
        carry, toks, lg = _decode_chunk(graphdef, state, tok, pos, cache, key, done, stops, pad_id, chunk,
                                        temperature, top_p)
        out.append(np.asarray(toks))
        if return_logits:
            all_logits.append(np.asarray(lg))
    tokens = np.concatenate(out, 1)[:, :max_new_tokens]
    if return_logits:
        return tokens, np.concatenate(all_logits, 1)[:, :max_new_tokens]
    return tokens


def generate(model: Molmo2, processor, prompt: str, images=None, videos=None, max_new_tokens: int = 64,
             temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> dict:
    """Answer one prompt about images/videos: {"text", "token_ids"}."""
    batch = processor.chat(prompt, images=images, videos=videos)
    eos = processor.token_ids.eos
    tokens = generate_tokens(model, batch, max_new_tokens, stop_ids=[eos], temperature=temperature, top_p=top_p,
                             seed=seed, pad_id=eos)[0].tolist()
    tokens = tokens[: tokens.index(eos)] if eos in tokens else tokens
    return {"text": processor.tokenizer.decode(tokens), "token_ids": tokens}


def main(argv: list[str] | None = None) -> int:
    """`python -m molmo2_jax.generate`: answer one prompt, print the text (or JSON), draw parsed points."""
    p = argparse.ArgumentParser(prog="python -m molmo2_jax.generate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="our checkpoint or an HF Molmo2 directory")
    p.add_argument("--image", action="append", default=[], help="image file (repeatable)")
    p.add_argument("--video", help="video file")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--greedy", action="store_true", help="greedy decoding (the default)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="PNG with the parsed points drawn (for --video: a strip of frames with tracks)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    problem = check_cli_args(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    import molmo2_jax
    from molmo2_jax.processing.formats import parse_points

    try:
        model, processor = molmo2_jax.load(args.checkpoint)
        if processor is None:
            raise FileNotFoundError(f"{args.checkpoint} has no tokenizer/processor files; add tokenizer.json")
        check_prompt_text(args.prompt, processor.tokenizer.special_tokens)
        temperature = 0.0 if args.greedy else args.temperature
        result = generate(model, processor, args.prompt, images=args.image or None,
                          videos=[args.video] if args.video else None, max_new_tokens=args.max_new_tokens,
                          temperature=temperature, top_p=args.top_p, seed=args.seed)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    points = []
    if args.video and not args.image:
        from molmo2_jax.processing.formats import parse_tracks
        video = processor.load_video(args.video)
        h, w = video.frames.shape[1:3]
        points = parse_points(result["text"], w, h)
        if args.out:
            from molmo2_jax.visualize import draw_video_strip

            tracks = parse_tracks(result["text"], w, h)
            draw_video_strip(video.frames, video.timestamps, points, tracks).save(args.out)
    if args.image:
        from PIL import Image

        w, h = Image.open(args.image[0]).size
        points = parse_points(result["text"], w, h)
        if args.out:
            from molmo2_jax.visualize import draw_points

            draw_points(Image.open(args.image[0]).convert("RGB"), points).save(args.out)
    if args.json:
        print(json.dumps({**result, "points": points}))
    else:
        print(result["text"])
    return 0

