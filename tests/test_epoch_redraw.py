"""Per-epoch randomness: prompt style / length hints / crop choices drawn from (seed, epoch, example), so a
second epoch differs from the first, the same (seed, epoch) gives the same draws, and a resumed run agrees."""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.mixture import mix
from data_pipelines.packing import PackSpec
from data_pipelines.pipeline import Prepare, build_pipeline
from data_pipelines.schema import Conversation, Example, Message, Task, deserialize, serialize
from molmo2_jax.processing.encode import ExampleEncoder
from molmo2_jax.processing.processor import Molmo2Processor
from molmo2_jax.processing.tokenizer import QwenTokenizer

CAPTION = "A red circle next to a blue square on a grey table. " * 3


class Spy:
    """Records the first user turn of every branch the encoder builds."""

    def __init__(self):
        self.seen: list[str] = []

    def training_example(self, branches, images, videos, weighting):
        self.seen.extend(b[0]["content"] for b in branches)
        return {}


def caption(i: int) -> Example:
    return Example(f"cap{i}", "pixmo_cap", Task.CAPTION, [Conversation(
        [Message("user", "Describe this image."), Message("assistant", CAPTION)], "long_caption")])


def prompts(encoder_seed: int, epoch: int, n: int = 40) -> list[str]:
    spy = Spy()
    encode = ExampleEncoder(spy, mixture="stage1", system_prompt="style_and_length_v2", seed=encoder_seed)
    for i in range(n):
        encode(dataclasses.replace(caption(i), epoch=epoch))
    return spy.seen


def test_second_epoch_redraws_length_hints_deterministically():
    first, second = prompts(0, 0), prompts(0, 1)
    assert first == prompts(0, 0) and second == prompts(0, 1)
    changed = sum(a != b for a, b in zip(first, second))
    assert changed > len(first) // 3, (first, second)
    assert prompts(1, 0) != first  # the config seed is part of the draw


def test_high_res_crop_choice_is_redrawn_per_epoch():
    from data_pipelines.schema import ImageRef
    from molmo2_jax.processing.images import ImageConfig

    spy = Spy()
    spy.image = ImageConfig()
    encode = ExampleEncoder(spy, high_res_datasets=frozenset({"points"}), p_high_res=0.5)
    examples = [Example(f"p{i}", "points", Task.POINTING, [], images=[ImageRef(path="x.png")]) for i in range(40)]
    high = [[encode.processor_for(dataclasses.replace(e, epoch=k)) is not encode.processor for e in examples]
            for k in (0, 1)]
    assert 10 < sum(high[0]) < 30 and high[0] != high[1]


def test_mix_tags_each_record_with_its_epoch():
    ds, _ = mix({"a": ["x", "y", "z"], "b": ["u", "v"]}, {"a": 0.6, "b": 0.4}, seed=0)
    draws = [ds[i] for i in range(20)]
    for name_index, size in ((0, 3), (1, 2)):
        epochs = [e for i, _, e in draws if i == name_index]
        assert epochs == [k // size for k in range(len(epochs))]


def test_epoch_is_not_serialized():
    ex = dataclasses.replace(caption(0), epoch=3)
    assert deserialize(serialize(ex)).epoch == 0


def test_pipeline_prompts_differ_between_epochs_and_resume_identically():
    from data_pipelines.pipeline import decode_batch

    processor = Molmo2Processor(QwenTokenizer())
    encoder = ExampleEncoder(processor, mixture="stage1", system_prompt="style_and_length_v2", seed=5)
    scenes = [dataclasses.replace(caption(i), conversations=[Conversation(
        [Message("user", "Describe."), Message("assistant", f"Scene {i}. {CAPTION}")], "long_caption")])
        for i in range(4)]
    source = [serialize(e) for e in scenes]
    spec = PackSpec(seq_len=256, media=())

    def batches(state=None, n=12):
        it = iter(build_pipeline({"cap": source}, {"cap": 1.0}, encoder, spec, batch_size=1, seed=5,
                                 pack_window=2, read_threads=1))
        if state is not None:
            it.set_state(state)
        return it, [next(it) for _ in range(n)]

    _, run = batches()
    prompts: dict[str, set[str]] = {}
    occurrences = 0
    for batch in run:
        for text in decode_batch(batch, processor.tokenizer.decode):
            scene = text.split("Scene ")[1].split(".")[0]
            prompts.setdefault(scene, set()).add(text.split("user\n")[1].split("<|im_end|>")[0])
            occurrences += 1
    assert occurrences >= 12 and len(prompts) == 4  # every scene seen in 3+ epochs
    assert sum(len(p) > 1 for p in prompts.values()) >= 2, prompts  # redrawn hints across epochs
    it, head = batches(n=5)
    _, tail = batches(it.get_state(), n=7)
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(head + tail, run))

    prepare = Prepare(encoder, spec, ["cap"], [None])
    a, b = prepare((0, source[0], 0)), prepare((0, source[0], 0))
    assert np.array_equal(a["input_ids"], b["input_ids"])
