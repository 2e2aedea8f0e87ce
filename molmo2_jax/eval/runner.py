"""The benchmark runner: examples -> prompts -> batched greedy answers -> allenai's scores, resumable.

Examples are answered in batches of similar prompt length (`generate_tokens`: left-padded rows, prompt
length bucketed; crops and pooling rows bucketed here too, so jit compiles a few shapes). Every answered
example is appended to `predictions.jsonl` at once; a rerun reads it back and answers only what is missing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_pipelines.schema import BadSample, Example
from molmo2_jax.eval.scoring import aggregate, score_example

PREDICTIONS = "predictions.jsonl"


@dataclass
class BenchmarkRun:
    """One benchmark to run: its examples and how to score them."""

    name: str
    metric: str
    examples: list[Example]
    max_new_tokens: int
    media_root: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)


def prompt_messages(example: Example) -> list[dict[str, Any]]:
    """The example's first user turn as a chat message carrying its Molmo2 prompt style."""
    conv = example.conversations[0]
    text = conv.messages[0].content
    content = [{"type": "text", "text": text, "style": conv.style}] if conv.style else text
    return [{"role": "user", "content": content}]


def example_media(example: Example, media_root: str | None, video_cfg) -> tuple[list, list]:
    """(images as uint8 arrays, videos as VideoFrames) of an example; BadSample if unreadable."""
    from data_pipelines.media import load_image, resolve
    from molmo2_jax.processing.errors import MediaError
    from molmo2_jax.processing.video import load_video

    images = [ref.array if ref.array is not None else load_image(ref, media_root) for ref in example.images]
    videos = []
    if example.video is not None:
        v = example.video
        src = v.data if v.data is not None else resolve(v.path or "", media_root)
        clip = (v.start_s or 0.0, v.end_s) if v.end_s is not None else None
        try:
            videos.append(load_video(src, video_cfg.max_frames, video_cfg.max_fps, clip=clip))
        except MediaError as e:
            raise BadSample("undecodable_media", str(e))
    return images, videos


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def collate(rows: Sequence[Mapping[str, np.ndarray]], pad_id: int) -> dict[str, np.ndarray]:
    """Batch-of-one processor outputs -> one left-padded batch (same media kind in every row).

    input_ids / attention_mask / mm_token_type_ids [B, T] left-padded; crops of all rows concatenated in
    row order (the model assigns pooled features to <im_patch> tokens batch-major) with pooling indices
    offset into the concatenation; crops padded to a multiple of 8 and pooling rows to a multiple of 256
    (zero crops, -1 rows: no feature) so batches of different content share compiled shapes.
    """
    length = max(r["input_ids"].shape[1] for r in rows)
    out: dict[str, np.ndarray] = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("mm_token_type_ids", 0)):
        out[key] = np.stack([np.pad(r[key][0], (length - r[key].shape[1], 0), constant_values=fill) for r in rows])
    for pix, pool in (("pixel_values", "image_token_pooling"), ("pixel_values_videos", "video_token_pooling")):
        have = [r for r in rows if pix in r]
        if not have:
            continue
        if len(have) != len(rows):
            raise ValueError("collate needs every row of a batch to have the same media kind")
        crops, tables, offset = [], [], 0
        for r in rows:
            crops.append(r[pix])
            tables.append(np.where(r[pool] >= 0, r[pool] + offset, -1))
            offset += r[pix].shape[0] * r[pix].shape[1]
        px, tb = np.concatenate(crops), np.concatenate(tables)
        out[pix] = np.pad(px, ((0, _round_up(len(px), 8) - len(px)), (0, 0), (0, 0)))  # [crops', patches, dim]
        out[pool] = np.pad(tb, ((0, _round_up(len(tb), 256) - len(tb)), (0, 0)), constant_values=-1)  # [tokens', W]
    return out


def generate_batch(model, processor, prompts: Sequence[Mapping[str, np.ndarray]], max_new_tokens: int) -> list[str]:
    """Greedy answers for processed prompts, as one left-padded batch."""
    from molmo2_jax.generation import generate_tokens

    eos = processor.token_ids.eos
    tokens = generate_tokens(model, collate(prompts, eos), max_new_tokens, stop_ids=[eos], pad_id=eos)
    texts = []
    for row in np.asarray(tokens).tolist():
        row = row[:row.index(eos)] if eos in row else row
        texts.append(processor.tokenizer.decode(row))
    return texts


def _read_done(path: str) -> dict[tuple[str, str], dict]:
    """Records already in predictions.jsonl, by (benchmark, example id); a torn last line is cut off."""
    done: dict[tuple[str, str], dict] = {}
    if os.path.exists(path):
        with open(path, "rb+") as f:  # a run killed mid-write leaves a line without its newline
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                    done[(rec["benchmark"], rec["id"])] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
    return done


def _image_size(images: Sequence[np.ndarray]) -> tuple[int, int] | None:
    return (int(images[0].shape[1]), int(images[0].shape[0])) if images else None


def run_tasks(model, processor, tasks: Sequence[BenchmarkRun], out_dir: str, *, batch_size: int = 8,
              progress: bool = True, mask_loader: Callable[[str], np.ndarray] | None = None) -> dict[str, dict]:
    """Answer and score every task; appends to OUT/predictions.jsonl, returns {benchmark: scores with n}."""
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, PREDICTIONS)
    done = _read_done(path)
    total = sum(len(t.examples) for t in tasks)
    bar = tqdm(total=total, desc="eval", unit="ex", disable=not progress, dynamic_ncols=True)
    summary: dict[str, dict] = {}
    for task in tasks:
        unique_ids(task.examples)
    with open(path, "a") as sink:
        for task in tasks:
            records = [done[(task.name, ex.id)] for ex in task.examples if (task.name, ex.id) in done]
            bar.update(len(records))
            todo = [ex for ex in task.examples if (task.name, ex.id) not in done]
            skipped = dict(task.skipped)
            encoded = []
            for ex in todo:
                try:
                    images, videos = example_media(ex, task.media_root, processor.video)
                    batch = processor.chat(prompt_messages(ex), images=images or None, videos=videos or None)
                except (BadSample, ValueError, OSError) as e:
                    reason = e.reason if isinstance(e, BadSample) else "encode_error"
                    skipped[reason] = skipped.get(reason, 0) + 1
                    bar.update(1)
                    continue
                encoded.append((ex, batch, _image_size(images)))
            encoded.sort(key=lambda item: item[1]["input_ids"].shape[1])  # length buckets
            for start in range(0, len(encoded), batch_size):
                chunk = encoded[start:start + batch_size]
                texts = generate_batch(model, processor, [b for _, b, _ in chunk], task.max_new_tokens)
                for (ex, _, size), text in zip(chunk, texts):
                    ctx = {"image_size": size, "load_mask": mask_loader or _mask_loader(task.media_root)}
                    rec = {"benchmark": task.name, "id": ex.id, "prediction": text,
                           **score_example(task.metric, ex.id, ex.meta, text, ctx)}
                    sink.write(json.dumps(rec, default=float) + "\n")
                    records.append(rec)
                sink.flush()
                bar.update(len(chunk))
            summary[task.name] = {**aggregate(task.metric, records), "metric": task.metric, "skipped": skipped}
    bar.close()
    return summary


def unique_ids(examples: Sequence[Example]) -> None:
    """Make example ids unique within a benchmark (a repeated id gets "#2", "#3"...): resume keys on them."""
    seen: dict[str, int] = {}
    for ex in examples:
        k = seen[ex.id] = seen.get(ex.id, 0) + 1
        if k > 1:
            ex.id = f"{ex.id}#{k}"


def _mask_loader(media_root: str | None) -> Callable[[str], np.ndarray]:
    from data_pipelines.media import resolve
    from data_pipelines.readers.eval_sets import mask_from_png

    return lambda rel: mask_from_png(resolve(rel, media_root))


def markdown_table(summary: Mapping[str, Mapping], published: Mapping[str, float] | None = None,
                   model_name: str | None = None, source: str = "") -> str:
    """Markdown table of scores (x100), beside Molmo2's published numbers when given."""
    head = "| benchmark | metric | n | ours |" + (f" {model_name} (published) |" if published is not None else "")
    rows = [head, "|---|---|---|---|" + ("---|" if published is not None else "")]
    for name, s in summary.items():
        score = s.get("score")
        ours = "n/a" if score is None or score != score else f"{100 * score:.1f}"
        row = f"| {name} | {s.get('metric', '')} | {s.get('n', 0)} | {ours} |"
        if published is not None:
            row += f" {published[name]:.1f} |" if name in published else " - |"
        rows.append(row)
    if published is not None and source:
        rows.append(f"\nPublished numbers: {source}.")
    return "\n".join(rows) + "\n"


def _no_nan(value: Any) -> Any:
    """NaN (a score over no examples) -> None, so summary.json is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {k: _no_nan(v) for k, v in value.items()}
    return value


def write_summary(out_dir: str, summary: Mapping[str, Any], table: str | None = None) -> None:
    """summary.json (NaN written as null) and results.md in `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(_no_nan(summary), f, indent=2, default=float, allow_nan=False)
    if table is not None:
        with open(os.path.join(out_dir, "results.md"), "w") as f:
            f.write(table)


def iter_prepared(root: str, name: str, split: str, skipped: dict[str, int], limit: int | None = None
                  ) -> tuple[list[Example], str | None]:
    """Deserialised examples of a prepared dataset (malformed records counted in `skipped`) and its media root."""
    from data_pipelines import writer
    from data_pipelines.schema import deserialize

    index = writer.load_index(root, name, split)
    src = writer.open_source(root, name, split)
    out: list[Example] = []
    for i in range(len(src)):
        if limit is not None and len(out) >= limit:
            break
        try:
            out.append(deserialize(src[i]))
        except BadSample as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
    return out, index.get("media_root")


def take(examples: Iterable[Example], limit: int | None) -> list[Example]:
    """The first `limit` examples (all when None)."""
    out = []
    for ex in examples:
        if limit is not None and len(out) >= limit:
            break
        out.append(ex)
    return out
