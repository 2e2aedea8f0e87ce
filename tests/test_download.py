"""Downloader against a real HTTP server on 127.0.0.1: resume, checksums, 404, image URL lists."""

import hashlib
import http.server
import json
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_pipelines import download, registry
from data_pipelines.readers import pixmo_image_path

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def _png_for(path: str) -> bytes:
    """A small real PNG whose colour depends on `path` (so each URL has its own bytes)."""
    import io

    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), hash(path) % 256, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD; /flaky drops the connection halfway on its first request."""

    requests: list[tuple[str, str | None]] = []
    flaky_done = False

    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).requests.append((self.path, rng))
        if self.path.startswith("/missing"):
            self.send_error(404, "Not Found")
            return
        body = b"not an image at all" if self.path.startswith("/img/bad") else PAYLOAD
        if self.path.startswith("/img/"):
            body = _png_for(self.path) if not self.path.startswith("/img/bad") else body
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(body):
            self.send_error(416, "Range Not Satisfiable")
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path == "/flaky" and not type(self).flaky_done:
            type(self).flaky_done = True
            self.wfile.write(body[start:start + len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def server():
    _Handler.requests, _Handler.flaky_done = [], False
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _dl():
    return download.Downloader(retries=3, backoff_s=0.01, timeout_s=5, chunk=4096, quiet=True)


def test_download_verifies_sha256_and_skips_when_already_present(server, tmp_path):
    dest = str(tmp_path / "a.bin")
    r = _dl().fetch(f"{server}/good", dest, SHA)
    assert r.ok and open(dest, "rb").read() == PAYLOAD
    n = len(_Handler.requests)
    assert _dl().fetch(f"{server}/good", dest, SHA).ok
    assert len(_Handler.requests) == n  # verified local copy: no request


def test_checksum_mismatch_fails_and_leaves_no_file(server, tmp_path):
    dest = str(tmp_path / "a.bin")
    r = _dl().fetch(f"{server}/good", dest, "0" * 64)
    assert not r.ok and "sha256 mismatch" in r.error
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_404_fails_without_retrying(server, tmp_path):
    r = _dl().fetch(f"{server}/missing", str(tmp_path / "x"), None)
    assert not r.ok and "404" in r.error
    assert len(_Handler.requests) == 1


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = str(tmp_path / "big.bin")
    r = _dl().fetch(f"{server}/flaky", dest, SHA)
    assert r.ok and r.resumed
    assert open(dest, "rb").read() == PAYLOAD
    ranges = [rng for path, rng in _Handler.requests if path == "/flaky"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    dest = str(tmp_path / "big.bin")
    with open(dest + ".part", "wb") as f:
        f.write(PAYLOAD[:1000])
    assert _dl().fetch(f"{server}/good", dest, SHA).ok
    assert _Handler.requests[-1][1] == "bytes=1000-"
    assert open(dest, "rb").read() == PAYLOAD


def test_image_url_failures_are_recorded_not_fatal(server, tmp_path):
    good = f"{server}/img/ok1"
    urls = [(good, hashlib.sha256(_png_for("/img/ok1")).hexdigest()), (f"{server}/img/ok2", None),
            (f"{server}/missing/3", None), (f"{server}/img/bad", "f" * 64),
            (f"{server}/img/bad2", None)]
    dl = download.Downloader(retries=1, backoff_s=0.01, timeout_s=5, quiet=True,
                             verify=download.verify_image)
    ok, failed = download.fetch_image_urls(urls, str(tmp_path), dl, workers=4)
    assert ok == 2 and failed == {"http_404": 1, "sha256_mismatch": 1, "not_an_image": 1}
    assert os.path.exists(tmp_path / pixmo_image_path(good))
    lines = [json.loads(x) for x in open(tmp_path / "pixmo_images" / "failures.jsonl")]
    assert {x["url"] for x in lines} == {f"{server}/missing/3", f"{server}/img/bad",
                                         f"{server}/img/bad2"}
    assert not os.path.exists(tmp_path / pixmo_image_path(f"{server}/img/bad2"))


def test_dataset_download_summarises_failures_manual_sets_and_images(server, tmp_path,
                                                                    monkeypatch):
    raw = tmp_path / "raw"
    repo_dir = raw / "hf" / "allenai" / "pixmo-count" / "data"
    repo_dir.mkdir(parents=True)  # as if the HF snapshot were already there
    pq.write_table(pa.table({"image_url": [f"{server}/img/a", f"{server}/missing/b"],
                             "image_sha256": [None, None]}), repo_dir / "train.parquet")
    pq.write_table(pa.table({"image_url": [f"{server}/img/val"], "image_sha256": [None]}),
                   repo_dir / "validation.parquet")  # another split: never fetched
    http_ok = registry.DatasetSpec("http_set", "vqa", "image", urls=(
        registry.FileSpec(f"{server}/good", SHA),), media="none")
    http_bad = registry.DatasetSpec("http_bad", "vqa", "image", urls=(
        registry.FileSpec(f"{server}/missing/file"),), media="none")
    manual = registry.get("doc_qa")
    images = registry.DatasetSpec("pixmo_count_like", "counting", "image",
                                  repo="allenai/pixmo-count", media="url")
    # no network here: the HF snapshot step is replaced by the files written above
    monkeypatch.setattr(download, "snapshot",
                        lambda spec, raw_dir, workers: str(raw / "hf" / spec.repo))
    summary = download.download_datasets([http_ok, http_bad, manual, images], str(raw),
                                         workers=2, downloader=_dl())
    assert summary.ok == ["http_set", "pixmo_count_like"]
    assert "404" in summary.failed["http_bad"]
    assert "doc_qa" in summary.manual
    assert summary.images["pixmo_count_like"] == (1, {"http_404": 1})
    report = summary.report()
    assert "FAILED" in report and "manual download" in report


def test_cli_rejects_datasets_outside_the_stage(tmp_path, capsys):
    with pytest.raises(SystemExit):
        download.main(["--stage", "1", "--out", str(tmp_path), "--only", "tulu4"])
    assert "not in stage 1" in capsys.readouterr().err


def test_list_prints_reader_size_source_and_manual_steps_per_dataset(capsys):
    assert download.main(["--stage", "2", "--list"]) == 0
    out = capsys.readouterr().out
    for spec in registry.stage_datasets(2):
        line = next(x for x in out.splitlines() if x.startswith(spec.name + ":"))
        assert ("NO READER" in line) == (spec.reader is None), line
        assert spec.origin in line
        assert (f"{spec.size:,} examples" if spec.size else "size unknown") in line
    assert "vixmo_points_minmax_0_5: reader molmo2_video_points" in out
    assert "youtube-cc-{exist,kw,temporal}-2fps/<video_id>_2fps.mp4" in out  # VideoPoint steps


def test_refused_connections_cost_well_under_a_second_each(tmp_path):
    from hub_server import refused_url
    import time
    dl = download.image_downloader(quiet=True)
    t0 = time.time()
    ok, failed = download.fetch_image_urls([(refused_url(f"{i}.jpg"), None) for i in range(8)],
                                           str(tmp_path), dl, workers=4)
    assert (ok, failed) == (0, {"connection_refused": 8})
    assert time.time() - t0 < 3.0  # one short retry each, not 15 s of backoff


def test_a_stale_html_page_on_disk_is_refetched_and_a_good_image_is_not(server, tmp_path):
    stale, good = f"{server}/img/stale", f"{server}/img/good"
    for url, body in ((stale, b"<html>parked</html>"), (good, _png_for("/img/good"))):
        path = tmp_path / pixmo_image_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    ok, failed = download.fetch_image_urls([(stale, None), (good, None)], str(tmp_path),
                                           download.image_downloader(quiet=True), workers=2)
    assert (ok, failed) == (2, {})
    assert [p for p, _ in _Handler.requests] == ["/img/stale"]
    assert download.verify_image(str(tmp_path / pixmo_image_path(stale))) is None
