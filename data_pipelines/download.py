"""Fetches a Molmo2 stage's datasets: HF snapshots, HTTP(S) files, PixMo image URL lists.

    python -m data_pipelines.download --stage 1 --out RAW [--only pixmo_count_train] [--workers 16]

HTTP files resume from `<file>.part` with a Range request, retry with backoff, and are
sha256-verified where the registry knows the hash. PixMo-style image URLs are fetched in
parallel to `RAW/pixmo_images/<sha256(url)>` (Molmo2's layout), checked against `image_sha256`
where given; failures go to `RAW/pixmo_images/failures.jsonl` and never stop the run. The run
ends with a summary of what is missing (failed, manual downloads, failed images); exit status 1
if anything failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import hashlib
import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence

from data_pipelines import registry
from data_pipelines.readers.base import find_files, iter_rows, pixmo_image_path

USER_AGENT = "molmo2-jax-data/0.1"
NOT_RETRYABLE = (400, 401, 403, 404, 410)


@dataclasses.dataclass
class Result:
    """Outcome of one file: ok with its path, or the error that stopped it."""

    url: str
    path: str
    ok: bool
    error: str = ""
    bytes: int = 0
    resumed: bool = False


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Downloader:
    """Resumable, retried, verified HTTP(S) downloads (stdlib only)."""

    def __init__(self, retries: int = 4, backoff_s: float = 1.0, timeout_s: float = 60.0,
                 chunk: int = 1 << 20, quiet: bool = False):
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.chunk, self.quiet = chunk, quiet
        self._lock = threading.Lock()

    def _say(self, msg: str) -> None:
        if not self.quiet:
            with self._lock:
                print(msg, file=sys.stderr, flush=True)

    def fetch(self, url: str, dest: str, sha256: str | None = None) -> Result:
        """Downloads `url` to `dest` (via `dest.part`, resumed with Range after interruptions)."""
        if os.path.exists(dest) and (sha256 is None or sha256_file(dest) == sha256):
            return Result(url, dest, True, bytes=os.path.getsize(dest))
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        part, resumed, error = dest + ".part", False, ""
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

    def fetch_all(self, jobs: Sequence[tuple[str, str, str | None]], workers: int = 8
                  ) -> list[Result]:
        """Parallel `fetch` of (url, dest, sha256) jobs, in job order."""
        with cf.ThreadPoolExecutor(max(workers, 1)) as pool:
            return list(pool.map(lambda j: self.fetch(*j), jobs))


def fetch_image_urls(urls: Iterable[tuple[str, str | None]], raw: str, downloader: Downloader,
                     workers: int = 16) -> tuple[int, int]:
    """PixMo image URLs -> raw/pixmo_images/<sha256(url)>; failures appended to failures.jsonl.

    Returns (ok, failed). A failed image only drops the examples that use it.
    """
    jobs = {url: (url, os.path.join(raw, pixmo_image_path(url)), sha) for url, sha in urls}
    results = downloader.fetch_all(list(jobs.values()), workers)
    failed = [r for r in results if not r.ok]
    if failed:
        path = os.path.join(raw, "pixmo_images", "failures.jsonl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            for r in failed:
                f.write(json.dumps({"url": r.url, "error": r.error}) + "\n")
    return len(results) - len(failed), len(failed)


def image_urls(files: Iterable[str]) -> dict[str, str | None]:
    """{url: image_sha256 or None} from rows with `image_url` (+ `image_sha256`) or `image_urls`."""
    urls: dict[str, str | None] = {}
    for path in files:
        for row in iter_rows(path):
            if "image_url" in row:
                urls[row["image_url"]] = row.get("image_sha256") or urls.get(row["image_url"])
            for u in row.get("image_urls") or ():
                urls.setdefault(u, None)
    return urls


def snapshot(spec: registry.DatasetSpec, raw: str, workers: int) -> str:
    """HF dataset snapshot into raw/hf/<repo> (resumable, parallel: huggingface_hub), verified."""
    from huggingface_hub import snapshot_download
    local = os.path.join(raw, "hf", spec.repo)
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
    images: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def report(self) -> str:
        lines = [f"downloaded: {len(self.ok)} datasets"]
        lines += [f"  images {n}: {ok} ok, {bad} failed (see pixmo_images/failures.jsonl)"
                  for n, (ok, bad) in self.images.items()]
        if self.failed:
            lines.append(f"FAILED ({len(self.failed)}): rerun to resume")
            lines += [f"  {n}: {e}" for n, e in self.failed.items()]
        if self.manual:
            lines.append(f"MISSING, manual download needed ({len(self.manual)}):")
            lines += [f"  {n}: {why}" for n, why in self.manual.items()]
        return "\n".join(lines)


def download_datasets(specs: Sequence[registry.DatasetSpec], raw: str, *, workers: int = 8,
                      images: bool = True, downloader: Downloader | None = None) -> Summary:
    """Fetches annotations (HF or HTTP) and URL images of `specs`; never raises per dataset."""
    dl = downloader or Downloader()
    summary, done_repos = Summary(), {}
    for spec in specs:
        try:
            if spec.repo is None and not spec.urls:
                summary.manual[spec.name] = spec.notes or "no public source in the registry"
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
                                            + (spec.notes or "see the Molmo2 README")
            elif spec.media == "url" and images and spec.repo is not None:
                files = find_files(os.path.join(raw, "hf", spec.repo), spec.allow_patterns)
                summary.images[spec.name] = fetch_image_urls(image_urls(files).items(), raw, dl,
                                                             workers)
            summary.ok.append(spec.name)
        except Exception as e:  # one dataset's failure must not stop the others
            summary.failed[spec.name] = f"{type(e).__name__}: {e}"
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Download a Molmo2 stage's datasets (verified).")
    p.add_argument("--stage", type=int, required=True, choices=sorted(registry.STAGE_MIXTURES))
    p.add_argument("--out", required=True, help="raw data root")
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
    summary = download_datasets(specs, args.out, workers=args.workers, images=not args.no_images)
    print(summary.report())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
