"""A pair's corpus as a run sees it, and how much of it is new since the champion.

:func:`load_corpus` reads the pairs uploaded to the store and the files of ``<data_dir>/<pair>/``, de-duplicates
by normalized source, hash-splits (:mod:`retrain.split`) and describes the result as a :class:`DataSnapshot`.
:func:`new_data` compares that snapshot with the one recorded in the champion's version tags.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from jobs.parallel_corpus import ParallelCorpus, split_pair
from retrain.corpus import Pair, dedupe, fingerprint, read_directory
from retrain.registry import VersionInfo
from retrain.settings import RetrainSettings
from retrain.split import SplitPairs, split_pairs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSnapshot:
    """What a model was (or would be) trained and tested on: enough to tell later how much data is new."""

    train_pairs: int
    dev_pairs: int
    test_pairs: int
    train_fingerprint: str
    test_fingerprint: str
    max_arrival_id: int  #: last store row included (0: none)
    max_arrival_time: str  #: its arrival time, ISO 8601 ("" if none)

    def tags(self) -> dict[str, str]:
        return {f"data.{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> DataSnapshot | None:
        """The snapshot recorded in version tags; None for versions without one (imported models)."""
        try:
            return cls(
                train_pairs=int(tags["data.train_pairs"]),
                dev_pairs=int(tags["data.dev_pairs"]),
                test_pairs=int(tags["data.test_pairs"]),
                train_fingerprint=tags["data.train_fingerprint"],
                test_fingerprint=tags["data.test_fingerprint"],
                max_arrival_id=int(tags["data.max_arrival_id"]),
                max_arrival_time=tags.get("data.max_arrival_time", ""),
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class Corpus:
    """A pair's current corpus, split, with its snapshot."""

    parts: SplitPairs
    snapshot: DataSnapshot


def load_corpus(settings: RetrainSettings, pair: str) -> Corpus:
    """Uploaded pairs (arrival order) then directory files (path order), de-duplicated and hash-split."""
    source_lang, target_lang = split_pair(pair)
    store = ParallelCorpus.from_url(settings.store_url)
    try:
        store.create_schema()
        stored = list(store.segments(pair))
    finally:
        store.engine.dispose()
    pairs = [Pair(s.source, s.target, origin=f"store:{s.id}") for s in stored]
    from_files = list(read_directory(settings.pair_data_dir(pair), source_lang, target_lang))
    corpus = dedupe([*pairs, *from_files])
    parts = split_pairs(corpus)
    last = stored[-1] if stored else None
    snapshot = DataSnapshot(
        train_pairs=len(parts.train),
        dev_pairs=len(parts.dev),
        test_pairs=len(parts.test),
        train_fingerprint=fingerprint(parts.train),
        test_fingerprint=fingerprint(parts.test),
        max_arrival_id=last.id if last else 0,
        max_arrival_time=last.created_at.isoformat() if last else "",
    )
    log.info(
        "corpus %s: %d stored + %d from files -> %d sentences (train %d, dev %d, test %d)",
        pair,
        len(pairs),
        len(from_files),
        len(corpus),
        snapshot.train_pairs,
        snapshot.dev_pairs,
        snapshot.test_pairs,
    )
    return Corpus(parts, snapshot)


@dataclass(frozen=True)
class NewData:
    """How much training data arrived since the champion's snapshot, and whether that is enough to train."""

    new_pairs: int
    enough: bool
    reason: str


def new_data(current: DataSnapshot, champion: VersionInfo | None, settings: RetrainSettings) -> NewData:
    """New training pairs = today's train split minus the champion's (the corpus is append-only)."""
    before = DataSnapshot.from_tags(champion.tags) if champion is not None else None
    need = f"need {settings.min_new_pairs}"
    if champion is None or before is None:
        whose = "no champion yet" if champion is None else f"champion version {champion.version} has no data snapshot"
        enough = current.train_pairs >= settings.min_new_pairs and current.train_pairs > 0
        return NewData(current.train_pairs, enough, f"{current.train_pairs} training pairs, {whose}; {need}")
    if current.train_fingerprint == before.train_fingerprint:
        return NewData(0, False, f"the training data is unchanged since champion version {champion.version}")
    new = max(current.train_pairs - before.train_pairs, 0)
    share = new / before.train_pairs if before.train_pairs else float("inf")
    enough = new > 0 and (new >= settings.min_new_pairs or share >= settings.min_new_share)
    return NewData(
        new,
        enough,
        f"{new} new training pairs since champion version {champion.version} "
        f"({share:.1%} of {before.train_pairs}); {need} or {settings.min_new_share:.1%}",
    )
