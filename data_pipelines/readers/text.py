"""Text-only chat reader (allenai/molmo2-tulu4-classified) for the Molmo2 NLP share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from data_pipelines.readers.base import Row, convert_rows
from data_pipelines.schema import ROLES, Conversation, Example, Message, Task


def read_tulu(rows: Iterable[Row], *, media_root: str | None, source: str,
              skipped: MutableMapping[str, int], max_first_message_tokens: int | None = None,
              exclude_categories: tuple[str, ...] = ()) -> Iterator[Example]:
    """Columns id, messages [{role, content}], source, category, first_message_qwen3_tokens,
    empty_messages, has_special_token. Rows the Molmo2 filter drops (empty messages, special
    tokens, too-long first message, excluded categories, roles other than user/assistant) are
    counted as `filtered`."""
    def convert(row: Row) -> Example | None:
        msgs = [Message(m["role"], m["content"]) for m in row["messages"]]
        if (row.get("empty_messages") or row.get("has_special_token")
                or row.get("category") in exclude_categories
                or (max_first_message_tokens is not None
                    and row.get("first_message_qwen3_tokens", 0) > max_first_message_tokens)
                or not msgs or any(m.role not in ROLES for m in msgs)):
            return None
        return Example(str(row["id"]), source, Task.TEXT, [Conversation(msgs, "text_sft")],
                       meta={"upstream_source": row.get("source", "")})
    return convert_rows(rows, convert, skipped)
