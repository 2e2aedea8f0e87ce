"""Synthetic shapes data: deterministic, targets in Molmo2 formats, ground truth consistent."""

import dataclasses
import re

import numpy as np
import pytest

from data_pipelines import media
from data_pipelines.packing import PackSpec
from data_pipelines.schema import serialize, validate
from byte_encoder import ByteLevelEncoder
from data_pipelines.synthetic import (COLOURS, DEMO_WEIGHTS, TASKS, SyntheticConfig, SyntheticSource,
                                      caption_text, place, synthetic_sources)
from molmo2_jax.processing.video import load_video

CFG = SyntheticConfig()
POINTS = re.compile(r'<points coords="([^"]*)">([^<]*)</points>')


def _parse_coords(coords):
    """'1 1 123 456 2 ...' -> [(image, id, x, y)] (groups separated by ';')."""
    out = []
    for group in coords.split(";"):
        vals = group.split()
        img = vals[0]
        for i in range(1, len(vals), 3):
            out.append((img, int(vals[i]), int(vals[i + 1]), int(vals[i + 2])))
    return out


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_example_and_other_seed_differs(task):
    a, b = SyntheticSource(task, 10, seed=1), SyntheticSource(task, 10, seed=1)
    assert serialize(a[3]) == serialize(b[3])
    c = SyntheticSource(task, 10, seed=2)
    assert any(serialize(a[i]) != serialize(c[i]) for i in range(5))
    for i in range(4):
        validate(a[i])


def test_pointing_targets_are_shape_centres_in_molmo2_format():
    src = SyntheticSource("pointing", 20, seed=0)
    for i in range(20):
        ex = src[i]
        answer = ex.conversations[0].messages[1].content
        coords, label = POINTS.fullmatch(answer).groups()
        pts = _parse_coords(coords)
        assert [p[1] for p in pts] == list(range(1, len(pts) + 1))            # numbered from 1
        assert [p[2:] for p in pts] == sorted(p[2:] for p in pts)            # sorted by (x, y)
        assert all(re.fullmatch(r"\d{3}", v) for v in coords.split()[2::3])  # %03d
        assert label == ex.points[0].label and len(pts) == ex.count
        targets = [b for b in ex.boxes if b.label + "s" == label]
        assert len(targets) == ex.count
        pixels = media.load_image(ex.images[0])
        colour = COLOURS[label.split()[0]]
        for _, _, x, y in pts:  # each point is in a target box, on a pixel of its colour
            assert any(b.x0 <= x / 1000 <= b.x1 and b.y0 <= y / 1000 <= b.y1 for b in targets)
            px = pixels[min(int(y / 1000 * CFG.height), 63), min(int(x / 1000 * CFG.width), 63)]
            assert tuple(px) == colour


def test_boxes_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        shapes = place(rng, [("circle", "red")] * 6, CFG)
        for i, a in enumerate(shapes):
            for b in shapes[i + 1:]:
                assert abs(a.cx - b.cx) > a.r + b.r or abs(a.cy - b.cy) > a.r + b.r


def test_counting_answers_match_ground_truth_and_counts_are_uniform():
    src = SyntheticSource("counting", 500, seed=0)
    counts = []
    for i in range(500):
        ex = src[i]
        answer = ex.conversations[0].messages[1].content
        if ex.count == 0:
            assert answer == "There are none."
        else:
            assert answer.endswith(f"shows a total of {ex.count}.")
            assert len(_parse_coords(POINTS.search(answer).group(1))) == ex.count
        counts.append(ex.count)
    freq = np.bincount(counts, minlength=CFG.max_count + 1) / len(counts)
    assert np.allclose(freq, CFG.counting_chance, atol=0.06)  # chance level = 1 / (N + 1)
    assert CFG.counting_chance == pytest.approx(0.2)


def test_pointing_negatives_ask_about_an_absent_kind_and_leave_other_scenes_unchanged():
    plain, neg = SyntheticConfig(max_objects=3, max_count=3), SyntheticConfig(max_objects=3, max_count=3,
                                                                              pointing_negatives=0.3)
    none = 0
    for i in range(200):
        a, b = SyntheticSource("pointing", 200, 0, plain)[i], SyntheticSource("pointing", 200, 0, neg)[i]
        assert a.count >= 1
        if b.count == 0:
            none += 1
            assert b.conversations[0].messages[1].content == "There are none."
            label = b.points[0].label[:-1]  # "red circles" -> "red circle"
            assert all(bx.label != label for bx in b.boxes)  # the asked kind is not drawn
        else:
            assert b.count == a.count  # the same draw of k; only negatives replace it
    assert 40 <= none <= 80  # ~30% of 200


@pytest.mark.parametrize("task", ["pointing", "counting"])
def test_contrast_questions_ask_an_absent_kind_beside_targets_and_a_drawn_kind_beside_none(task):
    plain = SyntheticConfig(max_objects=3, max_count=3, pointing_negatives=0.3)
    contrast = dataclasses.replace(plain, contrast_questions=(task,))
    absent = drawn = 0
    for i in range(60):
        a, b = SyntheticSource(task, 60, 0, plain)[i], SyntheticSource(task, 60, 0, contrast)[i]
        assert b.conversations[0] == a.conversations[0] and b.images[0].data == a.images[0].data
        drawn_kinds = {bx.label for bx in b.boxes}
        if not drawn_kinds:  # an empty scene has nothing to contrast
            assert len(b.conversations) == 1
            continue
        assert len(b.conversations) == 2 and b.conversations[1].style == a.conversations[0].style
        label = re.search(r"(?:the|many) (\w+ \w+)s\b", b.conversations[1].messages[0].content).group(1)
        answer = b.conversations[1].messages[1].content
        if b.count:  # targets in the first question -> the contrast kind is not drawn
            assert label not in drawn_kinds and answer == "There are none."
            absent += 1
        else:  # none in the first -> a drawn kind, pointed at where it is
            assert label in drawn_kinds and label != b.points[0].label[:-1]
            want = sorted(((bx.x0 + bx.x1) / 2, (bx.y0 + bx.y1) / 2) for bx in b.boxes if bx.label == label)
            got = sorted((x / 1000, y / 1000) for _, _, x, y in _parse_coords(POINTS.search(answer).group(1)))
            assert np.allclose(got, want, atol=2e-3)
            drawn += 1
    assert absent >= 20 and drawn >= 3
    other = "counting" if task == "pointing" else "pointing"  # the option names the tasks it applies to
    assert all(len(SyntheticSource(other, 20, 0, contrast)[i].conversations) == 1 for i in range(20))


def test_caption_counts_every_shape():
    src = SyntheticSource("caption", 30, seed=0)
    for i in range(30):
        ex = src[i]
        text = ex.conversations[0].messages[1].content
        assert sum(int(n) for n in re.findall(r"(\d+) \w+ \w+", text)) == len(ex.boxes)
    assert caption_text([]) == "There are no shapes."


def test_vqa_answers_are_consistent_with_the_scene():
    src = SyntheticSource("vqa", 60, seed=0)
    for i in range(60):
        ex = src[i]
        q, a = (m.content for m in ex.conversations[0].messages)
        kinds = {tuple(b.label.split()) for b in ex.boxes}  # (colour, shape)
        if q.startswith("What colour is the"):
            shape = q.split()[-1].rstrip("?")
            assert [c for c, s in kinds if s == shape] == [a]
        elif q.startswith("What shape"):
            colour = q.split()[4]
            assert [s for c, s in kinds if c == colour] == [a]
        else:
            colour, shape = q.split()[3:5]
            assert a == ("yes" if (colour, shape) in kinds else "no")


def test_multi_image_groups_points_per_image_with_continuing_ids():
    src = SyntheticSource("multi_image", 30, seed=0)
    for i in range(30):
        ex = src[i]
        assert 2 <= len(ex.images) <= CFG.max_images
        answer = ex.conversations[0].messages[1].content
        if ex.count == 0:
            continue
        pts = _parse_coords(POINTS.search(answer).group(1))
        assert [p[1] for p in pts] == list(range(1, ex.count + 1))
        per_image = {str(p.image + 1): len(p.xy) for p in ex.points if p.xy}
        assert {img: sum(1 for p in pts if p[0] == img) for img in per_image} == per_image


def test_tracking_video_decodes_and_tracks_follow_the_objects():
    src = SyntheticSource("tracking", 5, seed=0)
    ex = src[0]
    video = load_video(ex.video.data, max_frames=CFG.num_frames + 1, max_fps=CFG.fps)  # every frame + the end
    frames = video.frames
    assert frames.shape == (CFG.num_frames + 1, CFG.height, CFG.width, 3)
    np.testing.assert_allclose(video.timestamps, np.arange(CFG.num_frames + 1) / CFG.fps)
    answer = ex.conversations[0].messages[1].content
    groups = re.search(r'<tracks coords="([^"]*)">', answer).group(1).split(";")
    assert [g.split()[0] for g in groups] == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]
    colour = np.array(COLOURS[ex.tracks[0].label.split()[0]])
    for t, x, y in ex.tracks[0].points:  # the tracked centre has the object's colour
        frame = frames[int(round(t * CFG.fps))]
        px = frame[int(y * CFG.height), int(x * CFG.width)].astype(int)
        assert np.abs(px - colour).max() < 40  # H.264 (yuv444, crf 10) is near-lossless


def test_image_size_is_configurable():
    cfg = SyntheticConfig(width=56, height=40)
    ex = SyntheticSource("counting", 3, config=cfg)[0]
    assert media.load_image(ex.images[0]).shape == (40, 56, 3)


def test_demo_sources_cover_the_demo_mixture_and_encode_to_the_packer_contract():
    sources = synthetic_sources(10, seed=0)
    assert set(sources) == set(DEMO_WEIGHTS)
    enc = ByteLevelEncoder()
    spec = PackSpec(seq_len=1024, media=enc.media_fields(max_crops=8, max_frames=8))
    for name, src in sources.items():
        ex = src[0]
        ex.images = [type(r)(data=r.data, array=media.load_image(r)) for r in ex.images]
        out = enc(ex)
        spec.check(out)
        text = enc.decode(out["target_ids"][out["loss_weights"] > 0])  # what the loss scores
        assert text == "".join(m.content + "<eos>" for c in ex.conversations
                               for m in c.messages if m.role == "assistant")
        assert (out["branch_ids"][out["mm_token_type_ids"] == 1] == -1).all()  # media is shared


@pytest.mark.parametrize("task", ["pointing", "counting"])
def test_more_questions_per_image_keep_the_first_and_answer_the_other_kinds(task):
    one, three = SyntheticConfig(max_objects=3, max_count=3), SyntheticConfig(max_objects=3, max_count=3,
                                                                               questions_per_image=3)
    extra_branches = 0
    for i in range(40):
        a, b = SyntheticSource(task, 40, 0, one)[i], SyntheticSource(task, 40, 0, three)[i]
        assert b.conversations[0] == a.conversations[0] and b.images[0].data == a.images[0].data
        assert len(a.conversations) == 1 and 1 <= len(b.conversations) <= 3
        extra_branches += len(b.conversations) - 1
        asked = set()
        for conv in b.conversations[1:]:
            assert conv.style == a.conversations[0].style
            label = re.search(r"(?:the|many) (\w+ \w+)s\b", conv.messages[0].content).group(1)
            assert label not in asked and label != a.points[0].label[:-1]
            asked.add(label)
            want = sorted(((bx.x0 + bx.x1) / 2, (bx.y0 + bx.y1) / 2) for bx in b.boxes if bx.label == label)
            found = POINTS.search(conv.messages[1].content)
            got = sorted((x / 1000, y / 1000) for _, _, x, y in _parse_coords(found.group(1))) if found else []
            assert len(got) == len(want) and np.allclose(got, want, atol=2e-3), (conv, want)
            if task == "pointing":
                assert want  # pointing asks only about kinds in the scene
    assert extra_branches >= 20


def test_model_field_overrides_reach_the_preset_and_the_connector_follows_the_decoder():
    from configs import demo
    from molmo2_jax.data import model_preset

    c = demo.get_config()
    assert model_preset(c) == __import__("molmo2_jax.model_config", fromlist=["tiny"]).tiny()
    with c.unlocked():
        c.model.text = {"hidden_size": 128, "num_layers": 4}
        c.model.vit = {"num_layers": 3}
    cfg = model_preset(c)
    assert (cfg.text.hidden_size, cfg.text.num_layers, cfg.vit.num_layers) == (128, 4, 3)
    assert cfg.connector.text_hidden_size == 128 and cfg.text.num_heads == 4
