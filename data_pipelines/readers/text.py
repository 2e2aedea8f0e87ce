"""Text-only chat reader (allenai/molmo2-tulu4-classified) for the Molmo2 NLP share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import Row, convert_rows
from data_pipelines.schema import Conversation, Example, Message, Task

# allenai/molmo2 olmo/data/text_datasets.py::Tulu4Filtered (use_code / use_non_english / use_puzzles /
# use_reasoning all False): categories and upstream sources Molmo2 leaves out.
TULU_EXCLUDED_CATEGORIES = ("code", "non-english")
TULU_EXCLUDED_SOURCES = (
    "allenai/dino-hardcodes", "allenai/hardcoded-olmo",  # hard-coded identity answers
    "allenai/puzzle_data_160k-ngram-filtered",  # puzzles
    "faezeb/verifiable-reasoning-v3-o4-mini-length-filtered-verified",  # reasoning traces
    "allenai/verifiable-reasoning-filtered-o4-mini-filtered",
)


def tulu_messages(parts: list[dict]) -> list[Message] | None:
    """Tulu4Filtered.format_messages: a system message is folded into the first user turn
    ("System: ...\n<user>"); turns must alternate user / assistant; None = drop the row."""
    if not parts or parts[0]["role"] == "assistant":
        return None
    first = parts[0]["content"]
    if parts[0]["role"] == "system":
        if len(parts) < 2 or parts[1]["role"] != "user":
            return None
        first, parts = f"System: {parts[0]['content']}\n{parts[1]['content']}", parts[2:]
    elif parts[0]["role"] == "user":
        parts = parts[1:]
    else:
        return None
    msgs = [Message("user", first)]
    for i, m in enumerate(parts):
        if m["role"] != ("assistant" if i % 2 == 0 else "user"):
            return None
        msgs.append(Message(m["role"], m["content"]))
    return msgs if len(msgs) > 1 else None


def read_tulu(rows: Iterable[Row], *, media_root: str | None, source: str,
              skipped: MutableMapping[str, int], max_first_message_tokens: int | None = None,
              exclude_categories: tuple[str, ...] = TULU_EXCLUDED_CATEGORIES,
              exclude_sources: tuple[str, ...] = TULU_EXCLUDED_SOURCES) -> Iterator[Example]:
    """Columns id, messages [{role, content}], source, category, first_message_qwen3_tokens,
    empty_messages, has_special_token. Rows the Molmo2 filter drops (empty messages, special
    tokens, too-long first message, code / non-English / puzzle / reasoning / hard-coded subsets,
    turns that do not alternate) are counted as `filtered`; system messages join the first user turn."""
    def convert(row: Row) -> Example | None:
        if (row.get("empty_messages") or row.get("has_special_token")
                or row.get("category") in exclude_categories or row.get("source") in exclude_sources
                or (max_first_message_tokens is not None
                    and row.get("first_message_qwen3_tokens", 0) > max_first_message_tokens)):
            return None
        msgs = tulu_messages(list(row["messages"]))
        if msgs is None:
            return None
        return Example(str(row["id"]), source, Task.TEXT, [Conversation(msgs, "text_sft")],
                       meta={"upstream_source": row.get("source", "")})
    return convert_rows(rows, convert, skipped)
