"""The hash split: which part (test, dev, train) a pair belongs to, forever.

A pair's split is a pure function of its *normalized source text* (:func:`retrain.corpus.normalize_source`):
``sha256(salt + normalized source)`` picks a bucket out of :data:`BUCKETS`, and fixed bucket ranges map to the
splits. Nothing else takes part — not the target, not the position in the corpus, not the corpus size — so

* as the corpus grows no pair ever changes split (yesterday's test set is a subset of today's), and
* the same sentence, however it is cased or spaced, can never be in both train and test.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from retrain.corpus import Pair, normalize_source

#: Number of hash buckets; shares are rounded to whole buckets (0.01 % each).
BUCKETS = 10_000


class Split(enum.StrEnum):
    TEST = "test"
    DEV = "dev"
    TRAIN = "train"


@dataclass(frozen=True)
class SplitShares:
    """Fractions of the corpus held out for testing and for development; the rest trains.

    Changing the shares (or the salt) moves pairs between splits: keep them fixed for the life of a corpus.
    """

    test: float = 0.05
    dev: float = 0.05
    salt: str = ""  #: mixed into the hash; a different salt is a different, independent split

    def __post_init__(self) -> None:
        if self.test < 0 or self.dev < 0 or self.test + self.dev >= 1:
            raise ValueError(
                f"split shares test={self.test} dev={self.dev} must be >= 0 and leave something to train on"
            )


def bucket_of(text: str, salt: str = "") -> int:
    """The hash bucket (``0 <= b < BUCKETS``) of a source text, after normalization."""
    digest = hashlib.sha256((salt + normalize_source(text)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def split_of(source: str, shares: SplitShares | None = None) -> Split:
    """The split a source text belongs to: a pure function of its normalized text (and the shares)."""
    shares = shares or SplitShares()
    bucket = bucket_of(source, shares.salt)
    test_end = round(shares.test * BUCKETS)
    dev_end = test_end + round(shares.dev * BUCKETS)
    if bucket < test_end:
        return Split.TEST
    if bucket < dev_end:
        return Split.DEV
    return Split.TRAIN


@dataclass
class SplitPairs:
    """A corpus divided into its three splits, each in input order."""

    train: list[Pair] = field(default_factory=list)
    dev: list[Pair] = field(default_factory=list)
    test: list[Pair] = field(default_factory=list)

    def __getitem__(self, split: Split) -> list[Pair]:
        return {Split.TRAIN: self.train, Split.DEV: self.dev, Split.TEST: self.test}[split]


def split_pairs(pairs: Iterable[Pair], shares: SplitShares | None = None) -> SplitPairs:
    """Divide ``pairs`` by :func:`split_of` of each source."""
    shares = shares or SplitShares()
    parts = SplitPairs()
    for pair in pairs:
        parts[split_of(pair.source, shares)].append(pair)
    return parts
