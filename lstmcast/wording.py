"""Counts and lists in messages: "1 fold", "3 folds", "1 series"; "'a', 'b' and 3 more"."""

from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """`count` and the word, singular for exactly one: plural(1, "point") is "1 point"."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def names(ids: list[str], most: int = 5) -> str:
    """The first `most` ids, quoted as Python writes them, and how many more: "'a', 'b' and 3 more"."""
    shown = ", ".join(repr(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")
