"""Points / tracks / counting: writers and parsers round-trip, legacy formats parse, garbage never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from molmo2_jax.processing.formats import (format_count, format_point_groups, format_points,
                                           format_tracks, from_1000, parse_count, parse_points,
                                           parse_tracks, to_1000)

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


def test_writer_sorts_pads_and_numbers_points():
    text = format_points([(320, 240), (6.4, 470), (6.4, 4.8)], W, H, "dots")
    assert text == '<points coords="1 1 010 010 2 010 979 3 500 500">dots</points>'
    assert format_count([], W, H, "dots") == "There are none."
    assert parse_count("There are none.") == 0


def test_tracks_parse_in_time_order():
    text = '<tracks coords="1.0 1 138 427;0.0 1 259 340 2 100 100">car</tracks>'
    assert parse_tracks(text, 1000, 1000) == [
        {"time": 0.0, "points": {1: (259.0, 340.0), 2: (100.0, 100.0)}},
        {"time": 1.0, "points": {1: (138.0, 427.0)}},
    ]


def test_coordinate_scale_round_trips_on_the_grid():
    for v in range(0, 1001, 7):
        assert to_1000(from_1000(v, W), W) == v


grid_points = st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=1,
                       max_size=12, unique=True)


@settings(max_examples=150, deadline=None)
@given(points=grid_points, label=st.text(st.characters(blacklist_characters="<>"), max_size=20))
def test_points_round_trip(points, label):
    pixels = [(from_1000(x, W), from_1000(y, H)) for x, y in points]
    parsed = parse_points(format_count(pixels, W, H, label), W, H)
    assert sorted((p["x"], p["y"]) for p in parsed) == sorted(pixels)
    assert [p["id"] for p in parsed] == list(range(1, len(points) + 1))
    assert all(p["group"] is None and p["label"] == (label.strip() or None) for p in parsed)
    assert parse_count(format_count(pixels, W, H, label)) == len(points)


@settings(max_examples=100, deadline=None)
@given(groups=st.dictionaries(st.integers(1, 5), grid_points, min_size=1, max_size=4))
def test_multi_image_points_round_trip(groups):
    sizes = {g: (100 * g, 50 * g) for g in range(1, 6)}
    pixels = {g: [(from_1000(x, sizes[g][0]), from_1000(y, sizes[g][1])) for x, y in pts]
              for g, pts in groups.items()}
    text = format_point_groups(pixels, sizes, "things")
    widths, heights = [sizes[g][0] for g in range(1, 6)], [sizes[g][1] for g in range(1, 6)]
    parsed = parse_points(text, widths, heights)
    got = {}
    for p in parsed:
        got.setdefault(p["group"], []).append((p["x"], p["y"]))
    assert {g: sorted(v) for g, v in got.items()} == {g: sorted(v) for g, v in pixels.items()}


@settings(max_examples=100, deadline=None)
@given(steps=st.dictionaries(st.integers(0, 200).map(lambda k: k / 2),
                             st.dictionaries(st.integers(1, 6), st.tuples(st.integers(0, 1000),
                                                                          st.integers(0, 1000)),
                                             min_size=1, max_size=4),
                             min_size=1, max_size=6))
def test_tracks_round_trip(steps):
    tracks = [{"time": t, "points": {obj: (from_1000(x, W), from_1000(y, H))
                                     for obj, (x, y) in pts.items()}} for t, pts in steps.items()]
    parsed = parse_tracks(format_tracks(tracks, W, H, "obj"), W, H)
    assert [s["time"] for s in parsed] == sorted(steps)
    # ids are renumbered by first appearance; the set of positions per time is unchanged
    for step in parsed:
        original = next(s for s in tracks if s["time"] == step["time"])
        assert sorted(step["points"].values()) == sorted(original["points"].values())


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
