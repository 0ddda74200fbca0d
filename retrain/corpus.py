"""Parallel corpora: the :class:`Pair` record, source normalization, and readers.

A corpus is any iterable of :class:`Pair`. Files are read by a reader chosen from the file's suffix
(:data:`READERS`); a new intake format (TMX, JSONL, a database table) is one more function that yields pairs.

Normalization (:func:`normalize_source`) is what "the same sentence" means everywhere in ``retrain``: duplicates are
found with it and the hash split (:mod:`retrain.split`) is computed from it, so a sentence that differs only in case,
width or spacing is one sentence. It lives on the ground floor (:mod:`jobs.parallel_corpus`), where the API
de-duplicates uploads with it, so the intake and the split can never disagree.

``retrain run`` reads two sources: the corpus uploaded through the API (:func:`read_store`) and the TSV, TMX and
JSON-lines files of a data directory (:func:`read_directory`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.errors import BatchTranslateError
from jobs.parallel_corpus import CorpusInputError, ParallelCorpus, normalize_source, parse_jsonl
from jobs.tmx import read_tmx_file

log = logging.getLogger(__name__)

#: Separator between the two sides of a line in a TSV corpus.
TSV_SEPARATOR = "\t"


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


#: Suffixes :func:`read_directory` reads; other files are skipped with a warning.
DIRECTORY_SUFFIXES = (".tsv", ".tmx", ".jsonl")


def _read_jsonl(path: Path) -> Iterator[Pair]:
    with path.open("rb") as lines:
        try:
            for segment in parse_jsonl(lines):
                yield Pair(segment.source, segment.target, origin=path.name)
        except CorpusInputError as exc:
            raise CorpusError(f"{path}:{exc.line}: {exc.reason}") from exc


def _read_tmx(path: Path, source_lang: str, target_lang: str) -> Iterator[Pair]:
    try:
        for segment in read_tmx_file(path, source_lang, target_lang):
            yield Pair(segment.source, segment.target, origin=path.name)
    except CorpusInputError as exc:
        raise CorpusError(f"{path}:{exc.line}: {exc.reason.removeprefix(f'{path}: ')}") from exc


def read_directory(directory: Path, source_lang: str, target_lang: str) -> Iterator[Pair]:
    """Yield the pairs of every ``.tsv``, ``.tmx`` and ``.jsonl`` file under ``directory``, in path order.

    TMX files give the side in ``source_lang`` as source and the one in ``target_lang`` as target; TSV and JSON-lines
    files are ``source, target`` already. Hidden files and other suffixes are skipped (with a warning for the
    latter). A missing directory yields nothing. Errors name the file and line (:class:`CorpusError`).
    """
    directory = Path(directory)
    if not directory.is_dir():
        log.info("no corpus directory %s", directory)
        return
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if any(part.startswith(".") for part in path.relative_to(directory).parts):
            continue
        suffix = path.suffix.lower()
        if suffix not in DIRECTORY_SUFFIXES:
            log.warning("skipping %s: not a corpus file (accepted: %s)", path, ", ".join(DIRECTORY_SUFFIXES))
            continue
        log.info("reading corpus %s", path)
        if suffix == ".tmx":
            yield from _read_tmx(path, source_lang, target_lang)
        elif suffix == ".jsonl":
            yield from _read_jsonl(path)
        else:
            yield from read_tsv(path)


def read_store(corpus: ParallelCorpus, pair: str) -> Iterator[Pair]:
    """Yield the pairs uploaded for ``pair`` (``POST /v1/corpus/{pair}``), in arrival order.

    ``origin`` is ``store:<id>``: the row's arrival number.
    """
    for segment in corpus.segments(pair):
        yield Pair(segment.source, segment.target, origin=f"store:{segment.id}")
