"""Stage pipeline: deterministic, exactly resumable, sharded per process, bad samples counted."""

import dataclasses
import json

import numpy as np
import pytest

from data_pipelines.packing import PackSpec, default_token_fields
from data_pipelines.pipeline import build_pipeline, decode_batch
from data_pipelines.schema import ImageRef, Points, serialize
from byte_encoder import ByteLevelEncoder
from data_pipelines.synthetic import DEMO_WEIGHTS, synthetic_sources

ENC = ByteLevelEncoder()
SPEC = PackSpec(seq_len=384, media=ENC.media_fields(max_crops=12, max_frames=12),
                token_fields=default_token_fields(pad_id=0))
TEXT_SPEC = PackSpec(seq_len=256, token_fields=default_token_fields(pad_id=0))


def id_encode(ex):
    """Test encode_fn: the example's '<source>/<id>' as byte tokens (identifies packed examples)."""
    ids = np.frombuffer(f"{ex.source}/{ex.id};".encode(), np.uint8).astype(np.int32) + 16
    n = len(ids)
    return {"input_ids": ids, "target_ids": np.append(ids[1:], -1),
            "loss_weights": np.ones(n, np.float32), "branch_ids": np.zeros(n, np.int32),
            "mm_token_type_ids": np.zeros(n, np.int32)}


def encode_or_fail(ex):
    """ByteLevelEncoder that fails on the example with id 'boom' (an encoder bug)."""
    if ex.id == "boom":
        raise RuntimeError("tokenizer exploded")
    return ENC(ex)


def _demo(seed=0, **kw):
    return build_pipeline(synthetic_sources(10_000, seed=1), DEMO_WEIGHTS, ENC, SPEC,
                          batch_size=2, seed=seed, pack_window=24, **kw)


def _take(it, n):
    return [next(it) for _ in range(n)]


def _assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_batches_have_fixed_shapes_and_real_content():
    it = iter(_demo())
    batch = next(it)
    assert batch["input_ids"].shape == (2, 384) and batch["segment_ids"].shape == (2, 384)
    assert batch["crops"].shape == (2, 12 + 12, 16, 48)  # one stack: image and frame slots
    assert batch["crop_segment_ids"].shape == (2, 24)
    assert batch["crop_pooling"].shape == (2, 384, 9)  # one table, image windows -1-padded to 9
    assert "source_counts" not in batch and it.counters.examples.sum() > 0
    texts = decode_batch(batch, ENC.decode)
    assert texts and all(t.startswith("<eos>") for t in texts)


def test_same_seed_gives_the_same_batches_and_another_seed_does_not():
    a, b, c = _take(iter(_demo(seed=0)), 3), _take(iter(_demo(seed=0)), 3), \
        _take(iter(_demo(seed=5)), 1)
    _assert_same(a, b)
    assert not np.array_equal(a[0]["input_ids"], c[0]["input_ids"])


def test_state_saved_at_step_k_restores_the_identical_following_batches():
    it = iter(_demo())
    _take(it, 3)
    state = json.loads(json.dumps(it.get_state()))  # checkpointable as JSON
    expected = _take(it, 4)
    restored = iter(_demo())
    restored.set_state(state)
    _assert_same(_take(restored, 4), expected)
    assert restored.counters.batches == it.counters.batches
    np.testing.assert_array_equal(restored.counters.examples, it.counters.examples)


def _ids(batches):
    return {t for b in batches for r in range(len(b["input_ids"]))
            for t in decode_batch(b, ENC.decode, row=r)}


def test_two_processes_read_disjoint_slices():
    sources = synthetic_sources(10_000, seed=1, tasks=("caption", "text"))
    weights = {"synthetic_caption": 0.5, "synthetic_text": 0.5}
    per_process = [
        _ids(_take(iter(build_pipeline(sources, weights, id_encode, TEXT_SPEC, batch_size=4,
                                       process_index=p, process_count=2, pack_window=32)), 5))
        for p in (0, 1)]
    assert per_process[0] and per_process[1]
    assert not per_process[0] & per_process[1]


def _bad_records():
    """One dataset of serialized records, each broken in a different way."""
    src = synthetic_sources(10_000, seed=1)
    good = src["synthetic_pointing"][0]
    bad_points = dataclasses.replace(good, points=[Points("x", [(1.5, 0.2)])])
    missing = dataclasses.replace(good, images=[ImageRef(path="no/such/file.png")])
    undecodable = dataclasses.replace(good, images=[ImageRef(data=b"\x89PNG but truncated")])
    boom = dataclasses.replace(src["synthetic_text"][0], id="boom")
    huge = src["synthetic_text"][1]
    huge.conversations[0].messages[1].content = "x" * 1000  # > seq_len tokens
    return [serialize(good), b"\x00not msgpack", serialize(bad_points), serialize(missing),
            serialize(undecodable), serialize(boom), serialize(huge)] * 200


def test_bad_samples_are_skipped_and_counted_per_dataset_never_crash():
    sources = {"broken": _bad_records(), **synthetic_sources(10_000, seed=1, tasks=("text",))}
    weights = {"broken": 0.5, "synthetic_text": 0.5}
    it = iter(build_pipeline(sources, weights, encode_or_fail, SPEC, batch_size=2, pack_window=32,
                             shuffle=False))
    _take(it, 6)
    skipped = it.counters.skipped_by_dataset()
    assert set(skipped) == {"broken"}
    assert set(skipped["broken"]) == {"malformed_record", "bad_annotation", "missing_media",
                                      "undecodable_media", "encode_error", "too_long"}
    counts = list(skipped["broken"].values())
    assert max(counts) - min(counts) <= 1  # each kind of breakage seen equally often
    assert it.counters.examples[0] > 0  # the good records still flow
    metrics = it.counters.metrics()
    assert metrics["data/skipped/broken/missing_media"] == skipped["broken"]["missing_media"]
    assert 0 < metrics["data/packing_efficiency"] <= 1


@pytest.mark.slow
def test_two_workers_are_deterministic_and_resumable():
    def run():
        return iter(_demo(num_workers=2))
    it = run()
    first = _take(it, 2)
    state = it.get_state()
    expected = _take(it, 2)
    it.close()
    again = run()
    _assert_same(_take(again, 2), first)
    again.set_state(state)
    _assert_same(_take(again, 2), expected)
    again.close()


def test_rows_sharing_a_crop_stack_come_flat_with_one_stack_per_group():
    """PackSpec.rows = 2: a batch of 4 rows holds 2 crop groups; row-level fields come flat [4, S]."""
    import dataclasses

    spec = dataclasses.replace(SPEC, rows=2)
    batch = next(iter(build_pipeline(synthetic_sources(10_000, seed=1), DEMO_WEIGHTS, ENC, spec, batch_size=4,
                                     seed=0, pack_window=24)))
    assert batch["input_ids"].shape == (4, 384) and batch["segment_ids"].shape == (4, 384)
    assert batch["crops"].shape == (2, 24, 16, 48) and batch["crop_pooling"].shape == (2, 768, 9)
    assert ((batch["crop_segment_ids"] > 0).sum(1) > 0).all()  # each group holds its rows' real crops
