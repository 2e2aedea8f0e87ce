"""Fetches a Molmo2 stage's datasets: HF snapshots, HTTP(S) files, PixMo image URL lists.

    python -m data_pipelines.download --stage 1 --out RAW [--only pixmo_count_train] [--workers 16]
    python -m data_pipelines.download --stage 2 --list     # readers, sizes, manual steps

HF datasets come through `huggingface_hub.snapshot_download` (resumable; `HF_ENDPOINT` selects
the hub) into `RAW/hf/<repo>`. HTTP files resume from `<file>.part` with a Range request,
retry with backoff, and are sha256-verified where the registry knows the hash. PixMo-style image
URLs are fetched in parallel to `RAW/pixmo_images/<sha256(url)>` (Molmo2's layout) and verified
at download time: sha256 where the row gives one, else the bytes must decode as an image (an
HTTP 200 HTML page is rejected). Failures go to `RAW/pixmo_images/failures.jsonl` with their
reason and never stop the run; a rerun skips verified files and retries only what failed. The
run ends with a summary of what is missing and why; exit status 1 if a dataset failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import http.client
import socket
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence

from data_pipelines import registry
from data_pipelines.readers import READERS, dataset_files, held_out_urls
from data_pipelines.readers.base import iter_rows, pixmo_image_path

USER_AGENT = "molmo2-jax-data/0.1"
NOT_RETRYABLE = (400, 401, 403, 404, 410, 451)
HTML_PREFIXES = (b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")


def failure_reason(error: str) -> str:
    """A short category for a failed URL (summary key): http_404, connection_refused, ..."""
    e = error.lower()
    for key, reason in (("html page", "html_page"), ("not an image", "not_an_image"),
                        ("sha256 mismatch", "sha256_mismatch"), ("refused", "connection_refused"),
                        ("timed out", "timeout"), ("timeout", "timeout"),
                        ("name or service", "dns_failure"), ("nodename", "dns_failure")):
        if key in e:
            return reason
    if e.startswith("http "):
        return "http_" + e.split()[1]
    return "other"


def verify_image(path: str, decode: bool = True) -> str | None:
    """None if `path` is an image, else why not (HTML page, undecodable bytes).

    decode=True decodes every pixel (download time); False only parses the header (a rerun's
    check of files that were fully verified before being moved into place).
    """
    from PIL import Image
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith(HTML_PREFIXES):
        return "an HTML page, not an image (dead image host?)"
    try:
        with Image.open(path) as im:
            if decode:
                im.load()
            if im.size[0] == 0 or im.size[1] == 0:
                return "not an image: zero size"
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad bytes
        return f"not an image: {type(e).__name__}: {e}"
    return None


def verify_image_header(path: str) -> str | None:
    return verify_image(path, decode=False)


@dataclasses.dataclass
class Result:
    """Outcome of one file: ok with its path, or the error that stopped it."""

    url: str
    path: str
    ok: bool
    error: str = ""
    bytes: int = 0
    resumed: bool = False
    cached: bool = False      # already present and verified: nothing fetched

    @property
    def reason(self) -> str:
        return "" if self.ok else failure_reason(self.error)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Downloader:
    """Resumable, retried, verified HTTP(S) downloads (stdlib only)."""

    def __init__(self, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0,
                 chunk: int = 1 << 20, quiet: bool = False, refused_retries: int = 1,
                 verify: Callable[[str], str | None] | None = None,
                 verify_cached: Callable[[str], str | None] | None = None):
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.chunk, self.quiet, self.refused_retries = chunk, quiet, refused_retries
        self.verify = verify  # extra check of a finished file: None if fine, else why not
        # check of a file already in place (it was verified before the atomic rename)
        self.verify_cached = verify_cached or verify
        self._lock = threading.Lock()

    def _say(self, msg: str) -> None:
        if not self.quiet:
            with self._lock:
                print(msg, file=sys.stderr, flush=True)

    def fetch(self, url: str, dest: str, sha256: str | None = None) -> Result:
        """Downloads `url` to `dest` (via `dest.part`, resumed with Range after interruptions)."""
        if os.path.exists(dest) and (sha256_file(dest) == sha256 if sha256 is not None
                                     else self.verify_cached is None
                                     or self.verify_cached(dest) is None):
            return Result(url, dest, True, bytes=os.path.getsize(dest), cached=True)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        part, resumed, error, refused = dest + ".part", False, "", 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            have = os.path.getsize(part) if os.path.exists(part) else 0
            try:
                self._transfer(url, part, have)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:  # the .part already holds the whole file
                    pass
                elif e.code in NOT_RETRYABLE:
                    return Result(url, dest, False, f"HTTP {e.code} {e.reason}")
                else:
                    error = f"HTTP {e.code} {e.reason}"
                    continue
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                error = f"{type(e).__name__}: {e}"
                cause = getattr(e, "reason", e)
                if isinstance(cause, ConnectionRefusedError):  # nothing listens: retry briefly
                    refused += 1
                    if refused > self.refused_retries:
                        return Result(url, dest, False, f"connection refused: {error}")
                elif isinstance(cause, socket.gaierror):  # unknown host: retrying cannot help
                    return Result(url, dest, False, f"name or service not known: {error}")
                resumed = True
                kept = os.path.getsize(part) if os.path.exists(part) else 0
                self._say(f"  retrying {url} ({error}); {kept} bytes kept")
                continue
            if sha256 is not None and (got := sha256_file(part)) != sha256:
                os.remove(part)
                if resumed:  # a corrupt partial file: try once more from scratch
                    resumed, error = False, f"sha256 mismatch after resume ({got})"
                    continue
                return Result(url, dest, False, f"sha256 mismatch: expected {sha256}, got {got} "
                                                "(upstream changed? update the registry hash "
                                                "and revision)")
            if self.verify is not None and (why := self.verify(part)) is not None:
                os.remove(part)
                return Result(url, dest, False, why)
            os.replace(part, dest)
            return Result(url, dest, True, bytes=os.path.getsize(dest), resumed=resumed)
        return Result(url, dest, False, f"gave up after {self.retries + 1} attempts: {error}")

    def _transfer(self, url: str, part: str, have: int) -> None:
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
            append = have and r.status == 206
            total = int(r.headers.get("Content-Length") or 0) + (have if append else 0)
            done, last = (have if append else 0), time.time()
            with open(part, "ab" if append else "wb") as f:
                while chunk := r.read(self.chunk):
                    f.write(chunk)
                    done += len(chunk)
                    if time.time() - last > 5:
                        last = time.time()
                        self._say(f"  {os.path.basename(part[:-5])}: {done / 1e6:.1f}"
                                  f"/{total / 1e6:.1f} MB")
            if total and done < total:
                raise http.client.IncompleteRead(b"", total - done)

    def fetch_all(self, jobs: Sequence[tuple[str, str, str | None]], workers: int = 8,
                  desc: str | None = None) -> list[Result]:
        """Parallel `fetch` of (url, dest, sha256) jobs, in job order (tqdm bar if `desc`)."""
        from tqdm import tqdm
        results: list[Result | None] = [None] * len(jobs)
        with cf.ThreadPoolExecutor(max(workers, 1)) as pool, \
                tqdm(total=len(jobs), desc=desc, unit="file", disable=desc is None or self.quiet,
                     file=sys.stderr, mininterval=1.0) as bar:
            futures = {pool.submit(self.fetch, *j): i for i, j in enumerate(jobs)}
            for fut in cf.as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        return results  # type: ignore[return-value]


def image_downloader(quiet: bool = False) -> Downloader:
    """Image URLs: a short timeout, 2 retries, 1 retry on a refused connection, decode check."""
    return Downloader(retries=2, backoff_s=0.25, timeout_s=10.0, quiet=quiet, refused_retries=1,
                      verify=verify_image, verify_cached=verify_image_header)


def fetch_image_urls(urls: Iterable[tuple[str, str | None]], raw: str, downloader: Downloader,
                     workers: int = 16, desc: str | None = None) -> tuple[int, dict[str, int]]:
    """PixMo image URLs -> raw/pixmo_images/<sha256(url)>; failures appended to failures.jsonl.

    Returns (ok, {failure reason: count}). A failed image only drops the examples that use it.
    """
    jobs = {url: (url, os.path.join(raw, pixmo_image_path(url)), sha) for url, sha in urls}
    results = downloader.fetch_all(list(jobs.values()), workers, desc=desc)
    failed = [r for r in results if not r.ok]
    reasons: dict[str, int] = {}
    if failed:
        path = os.path.join(raw, "pixmo_images", "failures.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            for r in failed:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
                f.write(json.dumps({"url": r.url, "reason": r.reason, "error": r.error}) + "\n")
    return len(results) - len(failed), reasons


def image_urls(files: Iterable[str]) -> dict[str, str | None]:
    """{url: image_sha256 or None} from rows with `image_url` (+ `image_sha256`) or `image_urls`."""
    urls: dict[str, str | None] = {}
    for path in files:
        for row in iter_rows(path):
            if not isinstance(row, dict):
                continue
            if isinstance(row.get("image_url"), str):
                urls[row["image_url"]] = row.get("image_sha256") or urls.get(row["image_url"])
            for u in row.get("image_urls") or ():
                if isinstance(u, str):
                    urls.setdefault(u, None)
    return urls


def snapshot(spec: registry.DatasetSpec, raw: str, workers: int) -> str:
    """HF dataset snapshot into raw/hf/<repo> (resumable, parallel: huggingface_hub), verified."""
    from huggingface_hub import snapshot_download
    local = os.path.join(raw, "hf", spec.repo)
    for repo in spec.held_out:  # eval annotations whose images must not train (no images)
        snapshot_download(repo, repo_type="dataset", local_dir=os.path.join(raw, "hf", repo),
                          max_workers=workers)
    snapshot_download(spec.repo, repo_type="dataset", revision=spec.revision, local_dir=local,
                      allow_patterns=list(spec.allow_patterns) or None, max_workers=workers)
    for f in spec.files:
        path = os.path.join(local, f.path)
        if f.sha256 and sha256_file(path) != f.sha256:
            raise ValueError(f"{path}: sha256 differs from the registry ({f.sha256})")
    return local


@dataclasses.dataclass
class Summary:
    ok: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    manual: dict[str, str] = dataclasses.field(default_factory=dict)
    images: dict[str, tuple[int, dict[str, int]]] = dataclasses.field(default_factory=dict)

    def report(self) -> str:
        lines = [f"downloaded: {len(self.ok)} datasets"]
        for n, (ok, bad) in self.images.items():
            why = ", ".join(f"{k} {v}" for k, v in sorted(bad.items())) or "none"
            lines.append(f"  images {n}: {ok} ok, {sum(bad.values())} missing ({why}; urls in "
                         "pixmo_images/failures.jsonl; rerun retries them)")
        if self.failed:
            lines.append(f"FAILED ({len(self.failed)}): rerun to resume")
            lines += [f"  {n}: {e}" for n, e in self.failed.items()]
        if self.manual:
            lines.append(f"MISSING, manual download needed ({len(self.manual)}):")
            lines += [f"  {n}: {why}" for n, why in self.manual.items()]
        return "\n".join(lines)


def download_datasets(specs: Sequence[registry.DatasetSpec], raw: str, *, workers: int = 8,
                      images: bool = True, downloader: Downloader | None = None,
                      image_dl: Downloader | None = None) -> Summary:
    """Fetches annotations (HF or HTTP) and URL images of `specs`; never raises per dataset."""
    dl = downloader or Downloader()
    img_dl = image_dl or image_downloader()
    summary, done_repos = Summary(), {}
    for spec in specs:
        try:
            if spec.repo is None and not spec.urls:
                summary.manual[spec.name] = spec.manual or spec.notes or \
                    "no public source in the registry"
                continue
            if spec.repo is not None:
                key = (spec.repo, spec.revision, spec.allow_patterns)
                if key not in done_repos:
                    done_repos[key] = snapshot(spec, raw, workers)
            bad = [r for r in dl.fetch_all([(f.path, os.path.join(raw, "http", spec.name,
                                                                   os.path.basename(f.path)),
                                             f.sha256) for f in spec.urls], workers) if not r.ok]
            if bad:
                summary.failed[spec.name] = "; ".join(f"{r.url}: {r.error}" for r in bad)
                continue
            if spec.media == "manual":
                summary.manual[spec.name] = "annotations fetched; media (videos/images) manual: " \
                                            + (spec.manual or spec.notes or "see the Molmo2 README")
            elif spec.media == "url" and images and spec.repo is not None:
                urls = image_urls(dataset_files(spec, raw))
                for u in held_out_urls(spec, raw):  # eval images: never fetched for training
                    urls.pop(u, None)
                summary.images[spec.name] = fetch_image_urls(urls.items(), raw, img_dl, workers,
                                                             desc=f"{spec.name} images")
            summary.ok.append(spec.name)
        except Exception as e:  # one dataset's failure must not stop the others
            summary.failed[spec.name] = f"{type(e).__name__}: {e}"
    return summary


def describe(specs: Sequence[registry.DatasetSpec]) -> str:
    """Per dataset: reader or not, size, origin, and what a user must do by hand."""
    lines = [f"{len(specs)} datasets; {sum(s.reader in READERS for s in specs)} with a reader"]
    for s in specs:
        reader = f"reader {s.reader}" if s.reader in READERS else "NO READER"
        size = f"{s.size:,} examples" if s.size else "size unknown"
        media = {"hf": "media in the repo", "url": "images fetched from URLs",
                 "none": "text only", "manual": "media: MANUAL"}.get(s.media, s.media)
        lines.append(f"{s.name}: {reader}; {size}; {s.origin}; {media}")
        if s.media == "manual" or s.repo is None:
            lines.append(f"    by hand: {s.manual or s.notes or 'see the Molmo2 README'}")
    missing = [s.name for s in specs if s.reader not in READERS]
    if missing:
        lines.append(f"WITHOUT A READER ({len(missing)}): {', '.join(missing)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Download a Molmo2 stage's datasets (verified).")
    p.add_argument("--stage", type=int, required=True, choices=sorted(registry.STAGE_MIXTURES))
    p.add_argument("--out", help="raw data root")
    p.add_argument("--list", action="store_true",
                   help="print each dataset's reader, size, source and manual steps; fetch nothing")
    p.add_argument("--only", action="append", default=[], help="dataset name (repeatable)")
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--no-images", action="store_true", help="skip PixMo image URL fetching")
    args = p.parse_args(argv)
    specs = registry.stage_datasets(args.stage)
    if args.only:
        unknown = set(args.only) - {s.name for s in specs}
        if unknown:
            p.error(f"not in stage {args.stage}: {sorted(unknown)}")
        specs = [s for s in specs if s.name in args.only]
    if args.list:
        print(describe(specs))
        return 0
    if not args.out:
        p.error("--out RAW is required (or pass --list)")
    summary = download_datasets(specs, args.out, workers=args.workers, images=not args.no_images)
    print(summary.report())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
