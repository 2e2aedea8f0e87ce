"""Canonical example: lossless (de)serialization, validation, Molmo2 target formats."""

import math

import msgpack
import pytest

from data_pipelines.schema import (BadSample, Box, Conversation, Example, ImageRef, Message,
                                   Points, Track, VideoRef, deserialize, serialize, validate)


def _example(**kw):
    base = dict(
        id="ex-1", source="pixmo_points_train", task="pointing",
        conversations=[Conversation([Message("user", "Point to the cats."),
                                     Message("assistant", '<points coords="1 1 500 500">cats'
                                                          '</points>')], "pointing"),
                       Conversation([Message("user", "Hi"), Message("assistant", "Hello")])],
        images=[ImageRef(path="pixmo_images/abc", url="http://x/a.jpg", sha256="ab" * 32),
                ImageRef(data=b"\x89PNG raw bytes")],
        points=[Points("cats", [(0.5, 0.5)], image=0)],
        boxes=[Box("cat", 0.4, 0.4, 0.6, 0.6, image=1)],
        tracks=[Track("dog", 1, [(0.0, 0.1, 0.2), (0.5, 0.15, 0.25)])],
        count=1, meta={"loss_weight": 0.2})
    base.update(kw)
    return Example(**base)


def test_serialize_roundtrip_is_lossless():
    ex = _example(video=VideoRef(path="videos/v.mp4", start_s=1.0, end_s=3.5))
    assert deserialize(serialize(ex)) == ex


def test_malformed_records_raise_badsample_malformed_record():
    for record in (b"\xc1garbage", msgpack.packb([1, 2]), msgpack.packb({"id": "x"})):
        with pytest.raises(BadSample) as e:
            deserialize(record)
        assert e.value.reason == "malformed_record"


@pytest.mark.parametrize("bad", [
    dict(points=[Points("cats", [(1.2, 0.5)])]),
    dict(points=[Points("cats", [(math.nan, 0.5)])]),
    dict(points=[Points("", [(0.5, 0.5)])]),
    dict(points=[Points("cats", [(0.5, 0.5)], image=5)]),
    dict(tracks=[Track("dog", 1, [(1.0, 0.1, 0.1), (0.5, 0.1, 0.1)])]),
    dict(conversations=[Conversation([Message("assistant", "hi")])]),
    dict(conversations=[]),
    dict(count=-1),
])
def test_validate_rejects_bad_annotations(bad):
    with pytest.raises(BadSample) as e:
        validate(_example(**bad))
    assert e.value.reason == "bad_annotation"
    assert "ex-1" in str(e.value)


def test_validate_accepts_a_good_example():
    validate(_example())
