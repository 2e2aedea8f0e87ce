"""Points / tracks / counting: the one writer (training targets) and the one parser (generation, eval) agree.

Expected writer strings are those of allenai/molmo2 tests/preprocessing/test_point_formatter.py
(html-v2: groups joined by ';' instead of html-v1's tab).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from molmo2_jax.processing.formats import (format_count, format_points, format_time, format_tracks, from_1000,
                                           parse_count, parse_points, parse_tracks, points_coords, to_1000)

W, H = 640, 480


def test_parses_molmo2_single_image_points():
    text = ('Counting the <points coords="1 1 073 160 2 173 600 3 258 725">the boats</points> '
            "shows a total of 3.")
    pts = parse_points(text, W, H)
    assert [(p["x"], p["y"], p["id"], p["group"], p["label"]) for p in pts] == [
        (from_1000(73, W), from_1000(160, H), 1, None, "the boats"),
        (from_1000(173, W), from_1000(600, H), 2, None, "the boats"),
        (from_1000(258, W), from_1000(725, H), 3, None, "the boats"),
    ]
    assert parse_count(text) == 3


def test_parses_multi_image_and_video_groups():
    multi = parse_points('<points coords="1 1 100 200;2 2 300 400\t2 3 500 500">cats</points>',
                         [100, 200], [100, 200])
    assert [(p["group"], p["x"], p["y"], p["id"]) for p in multi] == [
        (1, 10.0, 20.0, 1), (2, 60.0, 80.0, 2), (2, 100.0, 100.0, 3)]
    video = parse_points('<points coords="0.5 1 911 800;1.0 2 900 400">dog</points>', 1000, 1000)
    assert [(p["group"], p["id"], p["x"]) for p in video] == [(0.5, 1, 911.0), (1.0, 2, 900.0)]


def test_parses_legacy_percent_points():
    text = ('<point x="41.0" y="20.5" alt="a cat">cat</point> and '
            '<points x1="9.1" y1="11.7" x2="17.2" y2="41.3" alt="the boats">the boats</points>')
    pts = parse_points(text, 200, 100)
    assert [(round(p["x"], 6), round(p["y"], 6), p["id"], p["label"]) for p in pts] == [
        (82.0, 20.5, 1, "cat"), (18.2, 11.7, 2, "the boats"), (34.4, 41.3, 3, "the boats")]


def test_out_of_range_and_incomplete_points_are_skipped():
    assert parse_points('<points coords="1 1 1001 200 2 -5 3 3 500 500 4 1"/>', 10, 10) == [
        {"x": 5.0, "y": 5.0, "id": 3, "group": None, "label": None}]


def test_writer_sorts_after_rounding_pads_and_numbers_points():
    """allenai `test_html1_image`: sorted by the scaled (x, y), ids from 1, 3-digit coordinates."""
    assert format_count([(1, [(0.99, 0.8)])], "label") == \
        'Counting the <points coords="1 1 990 800">label</points> shows a total of 1.'
    assert format_count([(1, [(0.911, 0.8), (0.9, 0.4)])], "aasdf") == \
        'Counting the <points coords="1 1 900 400 2 911 800">aasdf</points> shows a total of 2.'
    assert format_count([(1, [(0.90001, 0.8), (0.9, 0.7)])], "tmp") == \
        'Counting the <points coords="1 1 900 700 2 900 800">tmp</points> shows a total of 2.'
    assert format_points([(1, [(0.911, 0.8), (0.9, 0.4), (0.05, 0.001)])], "cats") == \
        '<points coords="1 1 050 001 2 900 400 3 911 800">cats</points>'


def test_no_points_is_there_are_none_in_every_mode():
    """allenai `build_point_output`: count 0 -> "There are none." for pointing too (not an empty tag)."""
    assert format_points([(1, [])], "cats") == "There are none."
    assert format_count([(1, []), (2, [])], "cats") == "There are none."
    assert parse_count("There are none.") == 0 and parse_points("There are none.", 10, 10) == []


def test_multi_image_groups_continue_ids_and_skip_images_without_points():
    assert points_coords([(1, [(0.5, 0.5)]), (2, []), (3, [(0.2, 0.3), (0.1, 0.9)])]) == \
        "1 1 500 500;3 2 100 900 3 200 300"


def test_video_points_group_by_timestamp_and_keep_empty_frames():
    """allenai `test_html1_video` ("%0.1f" timestamps); `format_video_points` writes every timestamp."""
    assert format_count([(0.1, [(0.911, 0.8)]), (0.2, [(0.9, 0.4)])], "aasdf") == \
        'Counting the <points coords="0.1 1 911 800;0.2 2 900 400">aasdf</points> shows a total of 2.'
    assert points_coords([(0.5, []), (1.0, [(0.5, 0.5)])]) == "0.5 ;1.0 1 500 500"
    assert format_time(12.25) == "12.2" and format_time(3) == "3.0"


def test_tracks_match_allenai_single_object_track():
    """allenai `test_html1_single_object_track` (pixel points with scale 1000)."""
    track = [(0.0, 259.1968107876712 / 1000, 339.93107876712327 / 1000),
             (1.0, 138.28081145415143 / 1000, 426.57192596013783 / 1000),
             (2.0, 248.41219319816267 / 1000, 334.89588456363384 / 1000)]
    assert format_tracks([track], "debug") == \
        '<tracks coords="0.0 1 259 340;1.0 1 138 427;2.0 1 248 335">debug</tracks>'
    assert format_tracks([track[1:]], "debug") == '<tracks coords="1.0 1 138 427;2.0 1 248 335">debug</tracks>'
    assert format_tracks([], "debug") == "No tracks available."


def test_tracks_number_objects_by_first_frame_then_scaled_xy_not_input_order():
    """allenai `build_video_track_coordinates`: ids by first frame, then (x, y) within that frame."""
    text = format_tracks([[(0.5, 0.9, 0.9), (1.0, 0.8, 0.8)], [(0.0, 0.259, 0.34)]], "cars")
    assert text == '<tracks coords="0.0 1 259 340;0.5 2 900 900;1.0 2 800 800">cars</tracks>'
    text = format_tracks([[(0.0, 0.7, 0.1)], [(0.0, 0.2, 0.9), (0.5, 0.3, 0.9)]], "cars")
    assert text == '<tracks coords="0.0 1 200 900 2 700 100;0.5 1 300 900">cars</tracks>'


@pytest.mark.parametrize("text, count", [
    ('Counting the <points coords="1 1 900 400 2 911 800">dogs</points> shows a total of 2.', 2),
    ("3", 3),
    ("There are 3", 3),
    ("three", 3),
    ("Total: 7", 7),
    ("No, there are 2", 2),
    ("There are none.", 0),
    ("The total number of people is: 12 in this video, roughly", 12),
    ('<points coords="1 1 100 100 2 200 200 3 300 300">dogs</points> are here', 3),  # allenai counts the points
    ('<points coords="1 1 100 100">none</points>', 1),
    ("There are three dogs.", None),  # allenai PointCountEval reads no number here: the last word is "dogs"
    ("twenty-one birds", None),
    ("I cannot tell", None),
])
def test_parse_count_follows_allenai_point_count_eval(text, count):
    assert parse_count(text) == count


W, H = 640, 480
fraction = st.floats(0, 1, allow_nan=False)
xy_lists = st.lists(st.tuples(fraction, fraction), min_size=0, max_size=8)
labels = st.text(st.characters(blacklist_characters="<>", blacklist_categories=("Cs",)), max_size=20)


def _close(parsed: float, written: float, size: float) -> bool:
    """Within the 0..1000 rounding of the format."""
    return abs(parsed - written * size) <= size / 2000 + 1e-9


@settings(max_examples=150, deadline=None)
@given(groups=st.dictionaries(st.integers(1, 5), xy_lists, min_size=1, max_size=4), label=labels,
       count_mode=st.booleans())
def test_image_points_written_for_training_read_back(groups, label, count_mode):
    """Bar: random points -> training-target writer -> parse_points / parse_count give the same points."""
    ordered = sorted(groups.items())
    text = (format_count if count_mode else format_points)(ordered, label)
    widths, heights = [100.0 * g for g in range(1, 6)], [50.0 * g + 7 for g in range(1, 6)]
    parsed = parse_points(text, widths, heights)
    n = sum(len(xy) for xy in groups.values())
    assert len(parsed) == n
    assert parse_count(text) == n  # pointing answers are counted by their points
    assert sorted(p["id"] for p in parsed) == list(range(1, n + 1))
    for g, xy in groups.items():
        got = sorted((p["x"], p["y"]) for p in parsed if p["group"] == g)
        want = sorted((from_1000(to_1000(x), widths[g - 1]), from_1000(to_1000(y), heights[g - 1])) for x, y in xy)
        assert got == want
        assert all(_close(px, x, widths[g - 1]) and _close(py, y, heights[g - 1])
                   for (px, py), (x, y) in zip(got, sorted(xy, key=lambda p: (to_1000(p[0]), to_1000(p[1])))))
    assert all(p["label"] == (label.strip() or None) for p in parsed)


@settings(max_examples=100, deadline=None)
@given(xy=xy_lists, label=labels)
def test_single_image_count_round_trips(xy, label):
    text = format_count([(1, xy)], label)
    parsed = parse_points(text, W, H)
    assert parse_count(text) == len(xy)
    assert all(p["group"] is None for p in parsed)
    assert sorted((p["x"], p["y"]) for p in parsed) == sorted((from_1000(to_1000(x), W), from_1000(to_1000(y), H))
                                                              for x, y in xy)


@settings(max_examples=100, deadline=None)
@given(frames=st.dictionaries(st.integers(0, 200).map(lambda k: k / 2), xy_lists, min_size=1, max_size=5))
def test_video_points_round_trip_with_timestamps(frames):
    text = format_count(sorted(frames.items()), "dog")
    parsed = parse_points(text, W, H)
    assert parse_count(text) == sum(len(v) for v in frames.values())
    for t, xy in frames.items():
        got = sorted((p["x"], p["y"]) for p in parsed if p["group"] == t)
        assert got == sorted((from_1000(to_1000(x), W), from_1000(to_1000(y), H)) for x, y in xy)


# objects: a set of half-second times each (the occluded frames are missing) with a point per time
objects = st.lists(st.dictionaries(st.integers(0, 40).map(lambda k: k / 2), st.tuples(fraction, fraction),
                                   min_size=1, max_size=6), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(objs=objects)
def test_tracks_written_for_training_read_back(objs):
    """Bar: random tracks -> training-target writer -> parse_tracks give the same tracks (ids renumbered)."""
    times = sorted({t for pts in objs for t in pts})
    scaled = [{t: (to_1000(x), to_1000(y)) for t, (x, y) in pts.items()} for pts in objs]
    for t in times:  # objects that coincide after rounding cannot be told apart by any reader
        here = [s[t] for s in scaled if t in s]
        assume(len(set(here)) == len(here))
    tracks = [sorted((t, x, y) for t, (x, y) in pts.items()) for pts in objs]
    parsed = parse_tracks(format_tracks(tracks, "obj"), W, H)
    assert [s["time"] for s in parsed] == times
    renumber: dict[int, int] = {}
    for step in parsed:
        t = step["time"]
        present = [k for k in range(len(objs)) if t in scaled[k]]
        assert len(step["points"]) == len(present)
        for k in present:
            x, y = objs[k][t]
            (obj_id, (px, py)), = [(i, pt) for i, pt in step["points"].items()
                                   if pt == (from_1000(scaled[k][t][0], W), from_1000(scaled[k][t][1], H))]
            assert _close(px, x, W) and _close(py, y, H)
            assert renumber.setdefault(k, obj_id) == obj_id  # the same object keeps its id across frames
    assert sorted(renumber.values()) == list(range(1, len(objs) + 1))


fragments = st.sampled_from([
    "<points", "<tracks", "<point", " coords=\"", "\"", ">", "</points>", "</tracks>", "/>", ";",
    "\t", ":", ",", " ", "1", "0.5", "1000", "999999999999999999999", "-3", "nan", "inf", "1e400",
    "x1=\"", "y1=\"", "x=\"", "y=\"", "alt=\"", "Counting the ", "shows a total of ", "There are none",
    "١٢", "\x00", "𝟙",
])


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.lists(fragments, max_size=40).map("".join)),
       size=st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True),
                      st.lists(st.integers(0, 100), max_size=3)))
def test_parsers_never_raise_on_garbage(text, size):
    assert isinstance(parse_points(text, size, size), list)
    assert isinstance(parse_tracks(text, size, size), list)
    count = parse_count(text)
    assert count is None or count >= 0
