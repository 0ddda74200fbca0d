"""The parallel corpus: approved segment pairs per language pair, append-only, one row per source sentence.

Clients upload pairs (``POST /v1/corpus/{pair}``, JSON lines or TMX); ``retrain`` reads them back to train. Each row
keeps its arrival order (``id``), arrival time, client and origin, so a model can say exactly which data it saw.

* **One sentence, one row.** Pairs are de-duplicated by :func:`normalize_source` of their source text: the first pair
  of a sentence stays, later ones count as duplicates. The hash split in ``retrain`` is computed from the same
  normalization, so the intake and the split can never disagree about what "the same sentence" is.
* **Append-only.** Rows are never updated or deleted by the service.
* **All or nothing.** An upload is parsed and validated completely before anything is written, then stored in one
  transaction: a malformed line stores nothing of that upload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from jobs.errors import BatchTranslateError, StoreUnavailable
from jobs.schemas import LANG_PATTERN
from jobs.store import UtcDateTime, create_store_engine, metadata

log = logging.getLogger(__name__)

#: Rows inserted per statement inside an upload's transaction.
INSERT_CHUNK_ROWS = 1_000
#: Longest ``origin`` kept, in characters (longer ones are cut).
MAX_ORIGIN_CHARS = 256

_WHITESPACE = re.compile(r"\s+")

parallel_corpus_table = Table(
    "parallel_corpus",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("pair", String(64), nullable=False),
    Column("source_key", String(64), nullable=False),  #: sha256 of the normalized source text
    Column("source", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("client", String(128), nullable=False),
    Column("origin", String(MAX_ORIGIN_CHARS), nullable=False),
    Column("upload_id", String(36), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("pair", "source_key", name="uq_parallel_corpus_pair_source_key"),
)


# --- what "the same sentence" means ------------------------------------------------------------------------------


def normalize_source(text: str) -> str:
    """NFKC, case-fold and collapse runs of whitespace: ``" The  CAT"`` and ``"the cat"`` are one sentence
    (NFKC also folds full-width and compatibility characters)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _WHITESPACE.sub(" ", folded).strip()


def source_key(text: str) -> str:
    """The stored identity of a source sentence: sha256 (hex) of its normalized text."""
    return hashlib.sha256(normalize_source(text).encode("utf-8")).hexdigest()


# --- language tags and pairs -------------------------------------------------------------------------------------


def normalize_language_tag(tag: str) -> str:
    """A BCP-47 tag in its canonical case: ``"EN_us"`` → ``"en-US"``, ``"zh-hant-tw"`` → ``"zh-Hant-TW"``.

    Language lower case, four-letter scripts title case, two-letter regions upper case, the rest lower case;
    ``_`` is accepted as a separator (it is common in translation memories).
    """
    parts = [p for p in tag.strip().replace("_", "-").split("-") if p]
    if not parts:
        return ""
    canonical = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            canonical.append(part.title())
        elif len(part) == 2 and part.isalpha():
            canonical.append(part.upper())
        else:
            canonical.append(part.lower())
    return "-".join(canonical)


def language_matches(tag: str, wanted: str) -> bool:
    """True when ``tag`` is ``wanted`` or a more specific form of it (``en-US`` matches ``en``; RFC 4647 basic
    filtering, case-insensitive)."""
    tag, wanted = normalize_language_tag(tag).lower(), normalize_language_tag(wanted).lower()
    return bool(wanted) and (tag == wanted or tag.startswith(wanted + "-"))


def split_pair(pair: str) -> tuple[str, str]:
    """``"en-fr"`` → ``("en", "fr")``, ``"en-pt-BR"`` → ``("en", "pt-BR")``: the one way to cut ``pair`` into two
    language codes. Raises ``ValueError`` when there is not exactly one."""
    parts = pair.split("-")
    candidates = [
        ("-".join(parts[:i]), "-".join(parts[i:]))
        for i in range(1, len(parts))
        if re.fullmatch(LANG_PATTERN, "-".join(parts[:i])) and re.fullmatch(LANG_PATTERN, "-".join(parts[i:]))
    ]
    if len(candidates) != 1:
        raise ValueError(f"{pair!r} is not a language pair like 'en-fr' (two language codes joined by '-')")
    return candidates[0]


# --- records and errors ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentPair:
    """One approved translation as uploaded: a source segment, its target, and the line it came from."""

    source: str
    target: str
    line: int | None = None  #: line of the upload (JSON line, or the TMX ``<tu>``), for error messages


@dataclass(frozen=True, slots=True)
class StoredSegment:
    """One row of the corpus."""

    id: int  #: arrival order within the store
    pair: str
    source: str
    target: str
    client: str
    origin: str
    created_at: datetime


@dataclass(frozen=True)
class IntakeResult:
    """What an upload did: pairs received, newly stored, and dropped as duplicates of a known sentence."""

    received: int
    stored: int
    duplicates: int
    upload_id: str


class CorpusInputError(BatchTranslateError, ValueError):
    """An upload or corpus file cannot be read; ``line`` and ``field`` say where."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None, code: str) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.reason = message
        self.line = line
        self.field = field
        self.code = code  #: stable error code (``malformed_jsonl``, ``missing_side``, ``malformed_tmx`` ...)

    @property
    def location(self) -> str:
        """Where the error is, as an API ``field``: ``line 3``, ``line 3.target``, or ``body``."""
        if self.line is None:
            return self.field or "body"
        return f"line {self.line}" + (f".{self.field}" if self.field else "")


# --- JSON lines --------------------------------------------------------------------------------------------------


def parse_jsonl(lines: Iterable[bytes | str]) -> Iterator[SegmentPair]:
    """Yield the pairs of a JSON-lines upload: one ``{"source": "...", "target": "..."}`` object per line.

    Blank lines are skipped, other keys are ignored, both sides are stripped. A line that is not UTF-8, not a JSON
    object, or lacks a non-empty string ``source`` or ``target`` raises :class:`CorpusInputError` naming it.
    """
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise CorpusInputError(f"not UTF-8 ({exc.reason})", line=number, code="malformed_jsonl") from exc
        if not raw.strip():
            continue
        try:
            record: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CorpusInputError(f"not valid JSON: {exc.msg}", line=number, code="malformed_jsonl") from exc
        if not isinstance(record, dict):
            raise CorpusInputError(
                'expected an object like {"source": "...", "target": "..."}', line=number, code="malformed_jsonl"
            )
        sides = []
        for side in ("source", "target"):
            value = record.get(side)
            if not isinstance(value, str) or not value.strip():
                problem = "is missing" if value is None else "must be a non-empty string"
                raise CorpusInputError(f"{side} {problem}", line=number, field=side, code="missing_side")
            sides.append(value.strip())
        yield SegmentPair(sides[0], sides[1], line=number)


def check_lengths(segments: Iterable[SegmentPair], max_chars: int) -> Iterator[SegmentPair]:
    """Pass ``segments`` through, raising :class:`CorpusInputError` at the first side longer than ``max_chars``."""
    for segment in segments:
        for side in ("source", "target"):
            length = len(getattr(segment, side))
            if length > max_chars:
                raise CorpusInputError(
                    f"{side} has {length} characters; the limit is {max_chars}",
                    line=segment.line,
                    field=side,
                    code="segment_too_long",
                )
        yield segment


# --- the store ---------------------------------------------------------------------------------------------------


class ParallelCorpus:
    """Appends to and reads the parallel corpus table (on the job store's database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> ParallelCorpus:
        return cls(create_store_engine(url))

    def create_schema(self) -> None:
        metadata.create_all(self.engine, tables=[parallel_corpus_table])

    def _insert(self) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` in this database's dialect."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return (
            dialect.insert(parallel_corpus_table)
            .on_conflict_do_nothing(index_elements=["pair", "source_key"])
            .returning(parallel_corpus_table.c.id)
        )

    def add(self, pair: str, segments: Iterable[SegmentPair], *, client: str, origin: str) -> IntakeResult:
        """Store the new sentences of ``segments`` for ``pair`` in one transaction; return the counts.

        ``segments`` is consumed completely before anything is written, so an error raised while reading it
        (a malformed line) stores nothing. A sentence already stored, or seen earlier in the same upload, counts as
        a duplicate; concurrent uploads of the same sentence store it once.
        """
        received = list(segments)
        upload_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        origin = origin[:MAX_ORIGIN_CHARS]
        rows: dict[str, dict[str, Any]] = {}
        for segment in received:
            key = source_key(segment.source)
            rows.setdefault(
                key,
                {
                    "pair": pair,
                    "source_key": key,
                    "source": segment.source,
                    "target": segment.target,
                    "client": client,
                    "origin": origin,
                    "upload_id": upload_id,
                    "created_at": now,
                },
            )
        stored = 0
        values = list(rows.values())
        try:
            with self.engine.begin() as conn:
                for start in range(0, len(values), INSERT_CHUNK_ROWS):
                    stored += len(conn.execute(self._insert(), values[start : start + INSERT_CHUNK_ROWS]).all())
        except OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        result = IntakeResult(
            received=len(received), stored=stored, duplicates=len(received) - stored, upload_id=upload_id
        )
        log.info(
            "corpus %s: upload %s from %s (%s): %d received, %d stored, %d duplicates",
            pair,
            upload_id,
            client,
            origin,
            result.received,
            result.stored,
            result.duplicates,
        )
        return result

    def segments(self, pair: str, *, after_id: int = 0, batch_rows: int = 5_000) -> Iterator[StoredSegment]:
        """The rows of ``pair`` in arrival order (those with ``id > after_id``), read in batches."""
        last = after_id
        table = parallel_corpus_table
        while True:
            query = select(table).where(table.c.pair == pair, table.c.id > last).order_by(table.c.id).limit(batch_rows)
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            if not rows:
                return
            for row in rows:
                yield StoredSegment(
                    id=row["id"],
                    pair=row["pair"],
                    source=row["source"],
                    target=row["target"],
                    client=row["client"],
                    origin=row["origin"],
                    created_at=row["created_at"],
                )
            last = rows[-1]["id"]

    def count(self, pair: str) -> int:
        """Number of sentences stored for ``pair``."""
        table = parallel_corpus_table
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(table.c.pair == pair)).scalar_one())

    def pairs(self) -> Sequence[str]:
        """Language pairs that have at least one stored sentence."""
        table = parallel_corpus_table
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(select(table.c.pair).distinct().order_by(table.c.pair))]
