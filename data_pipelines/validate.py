"""Check a fine-tuning JSONL file line by line: `python -m data_pipelines.validate FILE [FILE ...]`.

Each bad line is reported as `FILE:LINE: reason: why` (missing or undecodable media, coordinates outside
the image, times outside the video, empty conversation, unknown keys, bad JSON); exit status 1 if any.
The schema is in data_pipelines/readers/user_jsonl.py; the trainer runs the same check before step 1.
"""

from __future__ import annotations

import argparse
import sys

from data_pipelines.readers.user_jsonl import format_report, read_jsonl


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_pipelines.validate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="JSONL files in the fine-tuning schema")
    p.add_argument("--limit", type=int, default=200, help="bad lines listed per file")
    args = p.parse_args(argv)
    status = 0
    for path in args.files:
        try:
            good, bad = read_jsonl(path)
        except (FileNotFoundError, IsADirectoryError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        print(format_report(path, len(good), bad, args.limit))
        status = status or int(bool(bad))
    return status


if __name__ == "__main__":
    sys.exit(main())
