"""Parallel corpora: the :class:`Pair` record, source normalization, and readers.

A corpus is any iterable of :class:`Pair`. Files are read by a reader chosen from the file's suffix
(:data:`READERS`); a new intake format (TMX, JSONL, a database table) is one more function that yields pairs.

Normalization (:func:`normalize_source`) is what "the same sentence" means everywhere in ``retrain``: duplicates are
found with it and the hash split (:mod:`retrain.split`) is computed from it, so a sentence that differs only in case,
width or spacing is one sentence.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import BatchTranslateError

log = logging.getLogger(__name__)

#: Separator between the two sides of a line in a TSV corpus.
TSV_SEPARATOR = "\t"

_WHITESPACE = re.compile(r"\s+")


class CorpusError(BatchTranslateError):
    """A corpus file could not be read (unknown format, malformed line)."""


@dataclass(frozen=True, slots=True)
class Pair:
    """One translation example: a source segment and its reference translation.

    ``origin`` says where the pair came from (a file name, an import id); it never takes part in equality of
    sentences, which is decided by :attr:`key`.
    """

    source: str
    target: str
    origin: str | None = None

    @property
    def key(self) -> str:
        """The normalized source text: the identity of this pair for de-duplication and splitting."""
        return normalize_source(self.source)


def normalize_source(text: str) -> str:
    """NFKC, case-fold and collapse runs of whitespace: ``" The  CAT"`` and ``"the cat"`` are one sentence
    (NFKC also folds full-width and compatibility characters)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WHITESPACE.sub(" ", folded).strip()


def dedupe(pairs: Iterable[Pair]) -> list[Pair]:
    """Keep the first pair of each normalized source, in input order."""
    seen: set[str] = set()
    kept: list[Pair] = []
    for pair in pairs:
        key = pair.key
        if key in seen:
            continue
        seen.add(key)
        kept.append(pair)
    return kept


def fingerprint(pairs: Iterable[Pair]) -> str:
    """A short, order-independent digest of the pairs' contents (normalized source and exact target).

    Two corpora with the same sentences in any order get the same fingerprint; ``origin`` is ignored.
    """
    lines = sorted(f"{p.key}{TSV_SEPARATOR}{p.target}" for p in pairs)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def read_tsv(path: Path) -> Iterator[Pair]:
    """Yield the pairs of a ``source<TAB>target`` file (UTF-8, one pair per line).

    Blank lines are skipped. A line without exactly one tab, or with an empty side, raises :class:`CorpusError`
    naming the file and line.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(TSV_SEPARATOR)
            if len(fields) != 2:
                raise CorpusError(f"{path}:{number}: expected 'source<TAB>target', found {len(fields) - 1} tabs")
            source, target = (f.strip() for f in fields)
            if not source or not target:
                raise CorpusError(f"{path}:{number}: empty {'source' if not source else 'target'}")
            yield Pair(source, target, origin=path.name)


def write_tsv(pairs: Iterable[Pair], path: Path) -> int:
    """Write ``pairs`` as a TSV corpus that :func:`read_tsv` reads back; return the number written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for pair in pairs:
            for side in (pair.source, pair.target):
                if TSV_SEPARATOR in side or "\n" in side or "\r" in side:
                    raise CorpusError(f"cannot write {side!r} to a TSV corpus: it holds a tab or a newline")
            out.write(f"{pair.source}{TSV_SEPARATOR}{pair.target}\n")
            count += 1
    return count


#: A reader turns one file into pairs.
Reader = Callable[[Path], Iterator[Pair]]

#: Corpus readers by file suffix (lower case, with the dot).
READERS: dict[str, Reader] = {".tsv": read_tsv}


def read_corpus(paths: Path | Sequence[Path]) -> Iterator[Pair]:
    """Yield the pairs of one or more corpus files, each read by the reader for its suffix."""
    for path in [paths] if isinstance(paths, Path) else paths:
        path = Path(path)
        reader = READERS.get(path.suffix.lower())
        if reader is None:
            raise CorpusError(
                f"{path}: no reader for {path.suffix or 'files without a suffix'!r} "
                f"(accepted: {', '.join(sorted(READERS))})"
            )
        log.info("reading corpus %s", path)
        yield from reader(path)
