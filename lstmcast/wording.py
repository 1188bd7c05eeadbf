"""Counts in messages: "1 fold", "3 folds", "1 series"."""

from __future__ import annotations


def plural(count: int, word: str, words: str | None = None) -> str:
    """`count` and the word, singular for exactly one: plural(1, "point") is "1 point"."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"
