"""Reading TMX (translation memory exchange, 1.4b) into segment pairs: streaming, untrusted input, errors by line.

::

    <tmx version="1.4"><header srclang="en-US" .../><body>
      <tu>
        <tuv xml:lang="en-US"><seg>Click <bpt i="1">&lt;b&gt;</bpt>Save<ept i="1">&lt;/b&gt;</ept></seg></tuv>
        <tuv xml:lang="fr-FR"><seg>Cliquez <bpt i="1">&lt;b&gt;</bpt>Enregistrer<ept i="1">&lt;/b&gt;</ept></seg></tuv>
      </tu>
    </body></tmx>

* **Streaming.** The document is fed to a SAX parser chunk by chunk; each ``<tu>`` becomes a :class:`SegmentPair`
  as soon as it closes, so memory stays bounded by the largest unit, not the file.
* **Untrusted XML.** defusedxml's expat reader with DOCTYPE refused (TMX never needs one), entities and external
  references forbidden: billion-laughs and XXE inputs are a clean :class:`TmxError`.
* **Languages.** ``xml:lang`` (or the legacy ``lang``) is normalised as BCP-47 and matched like a language range:
  the pair's ``en`` takes ``en``, ``en-US``, ``EN_gb``...; an exact match wins over a more specific one. The
  header's ``srclang`` (possibly ``*all*``) does not decide which side is which: the language pair does.
* **Inline codes flattened.** The native codes inside ``<bpt>``, ``<ept>``, ``<ph>``, ``<it>`` and ``<ut>`` (and
  their ``<sub>`` flows) are dropped; the text of ``<seg>`` and ``<hi>`` is kept, whitespace runs collapse to one
  space. What remains is the plain text the worker translates.
* **Errors name the line.** Malformed XML, a ``<tu>`` without both languages, a ``<tuv>`` without a language or a
  ``<seg>``: :class:`TmxError` with the line of the offending element.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.expatreader import DefusedExpatParser

from jobs.parallel_corpus import CorpusInputError, SegmentPair, language_matches, normalize_language_tag

log = logging.getLogger(__name__)

#: Bytes read from a file per parser feed.
CHUNK_BYTES = 64 * 1024
#: Inline elements whose content is native code (markup of the original format), not text.
CODE_ELEMENTS = frozenset({"bpt", "ept", "ph", "it", "ut"})
#: Inline elements whose text is part of the segment.
TEXT_ELEMENTS = frozenset({"hi"})

_WHITESPACE = re.compile(r"\s+")


class TmxError(CorpusInputError):
    """A TMX document cannot be read: malformed or forbidden XML, or a unit without both languages."""

    def __init__(self, message: str, *, line: int | None, code: str = "malformed_tmx") -> None:
        super().__init__(message, line=line, code=code)


class _Variant:
    """One ``<tuv>`` being read."""

    __slots__ = ("lang", "line", "text")

    def __init__(self, lang: str, line: int) -> None:
        self.lang = lang
        self.line = line
        self.text: str | None = None


class _TmxHandler(ContentHandler):
    """Turns SAX events into finished segment pairs (collected in :attr:`ready`)."""

    def __init__(self, source_lang: str, target_lang: str) -> None:
        super().__init__()
        self.source_lang = source_lang
        self.target_lang = target_lang
        self.ready: list[SegmentPair] = []
        self.units = 0
        self._locator: Locator | None = None
        self._stack: list[str] = []
        self._seen_body = False
        self._unit_line = 0
        self._variants: list[_Variant] = []
        self._variant: _Variant | None = None
        self._seg: list[str] | None = None
        self._code_depth = 0

    def setDocumentLocator(self, locator: Locator) -> None:
        self._locator = locator

    @property
    def line(self) -> int | None:
        return self._locator.getLineNumber() if self._locator is not None else None

    def _fail(self, message: str, line: int | None = None, code: str = "malformed_tmx") -> TmxError:
        return TmxError(message, line=line if line is not None else self.line, code=code)

    # -- elements -------------------------------------------------------------------------------------------------
    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        parent = self._stack[-1] if self._stack else None
        self._stack.append(name)
        if self._seg is not None:
            self._start_inline(name)
            return
        if parent is None and name != "tmx":
            raise self._fail(f"the root element is <{name}>; a TMX document starts with <tmx>")
        if name in ("header", "body"):
            self._expect_parent(name, parent, "tmx")
            self._seen_body = self._seen_body or name == "body"
        elif name == "tu":
            self._expect_parent(name, parent, "body")
            self._unit_line = self.line or 0
            self._variants = []
        elif name == "tuv":
            self._expect_parent(name, parent, "tu")
            lang = attrs.get("xml:lang") or attrs.get("lang") or ""
            if not normalize_language_tag(lang):
                raise self._fail("<tuv> has no xml:lang attribute")
            self._variant = _Variant(normalize_language_tag(lang), self.line or 0)
        elif name == "seg":
            self._expect_parent(name, parent, "tuv")
            if self._variant is not None and self._variant.text is not None:
                raise self._fail("<tuv> has more than one <seg>")
            self._seg = []
            self._code_depth = 0
        # Anything else (prop, note, map, ude...) is metadata: allowed, not read.

    def _expect_parent(self, name: str, parent: str | None, expected: str) -> None:
        if parent != expected:
            raise self._fail(f"<{name}> must be inside <{expected}>, found it inside <{parent}>")

    def _start_inline(self, name: str) -> None:
        if self._code_depth:
            self._code_depth += 1
        elif name in CODE_ELEMENTS:
            self._code_depth = 1
        elif name not in TEXT_ELEMENTS:
            raise self._fail(f"<{name}> is not allowed inside <seg>")

    def characters(self, content: str) -> None:
        if self._seg is not None and not self._code_depth:
            self._seg.append(content)

    def endElement(self, name: str) -> None:
        self._stack.pop()
        if self._seg is not None and name != "seg":
            if self._code_depth:
                self._code_depth -= 1
            return
        if name == "seg" and self._seg is not None and self._variant is not None:
            self._variant.text = _WHITESPACE.sub(" ", "".join(self._seg)).strip()
            self._seg = None
        elif name == "tuv" and self._variant is not None:
            if self._variant.text is None:
                raise self._fail("<tuv> has no <seg>", self._variant.line)
            self._variants.append(self._variant)
            self._variant = None
        elif name == "tu":
            self.ready.append(self._pair_of_unit())
            self.units += 1
        elif name == "tmx" and not self._seen_body:
            raise self._fail("the document has no <body>")

    def _pair_of_unit(self) -> SegmentPair:
        sides = []
        for wanted in (self.source_lang, self.target_lang):
            variant = _pick(self._variants, wanted)
            if variant is None:
                found = ", ".join(v.lang for v in self._variants) or "none"
                raise self._fail(f"<tu> has no {wanted!r} variant (found: {found})", self._unit_line, "missing_side")
            if not variant.text:
                raise self._fail(f"<tu> has an empty {variant.lang!r} segment", variant.line, "missing_side")
            sides.append(variant.text)
        return SegmentPair(sides[0], sides[1], line=self._unit_line)

    def drain(self) -> list[SegmentPair]:
        ready, self.ready = self.ready, []
        return ready


def _pick(variants: list[_Variant], wanted: str) -> _Variant | None:
    """The variant in language ``wanted``: an exact tag first, else the first more specific one."""
    exact = normalize_language_tag(wanted).lower()
    matching = [v for v in variants if language_matches(v.lang, wanted)]
    for variant in matching:
        if variant.lang.lower() == exact:
            return variant
    return matching[0] if matching else None


def parse_tmx(chunks: Iterable[bytes], source_lang: str, target_lang: str) -> Iterator[SegmentPair]:
    """Yield one :class:`SegmentPair` per ``<tu>`` of a TMX document given as byte chunks.

    The source side is the ``<tuv>`` in ``source_lang``, the target side the one in ``target_lang`` (other
    languages are ignored). Raises :class:`TmxError` naming the line at the first problem; pairs yielded before it
    were valid, so a caller that must store all or nothing collects them first.
    """
    handler = _TmxHandler(source_lang, target_lang)
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setContentHandler(handler)
    handler.setDocumentLocator(parser)  # feed() never hands out a locator (only parse() does); the parser is one
    try:
        for chunk in chunks:
            parser.feed(chunk)
            yield from handler.drain()
        parser.close()
    except SAXParseException as exc:
        raise TmxError(f"not well-formed XML: {exc.getMessage()}", line=exc.getLineNumber()) from exc
    except DTDForbidden as exc:
        raise TmxError(
            "DOCTYPE declarations are not allowed in TMX", line=_line_of(parser), code="forbidden_xml"
        ) from exc
    except DefusedXmlException as exc:
        raise TmxError(
            f"forbidden XML construct ({type(exc).__name__}): entities and external references are not allowed",
            line=_line_of(parser),
            code="forbidden_xml",
        ) from exc
    yield from handler.drain()
    log.debug("read %d translation units", handler.units)


def _line_of(parser: DefusedExpatParser) -> int | None:
    try:
        return int(parser.getLineNumber())
    except (AttributeError, TypeError):
        return None


def read_chunks(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The bytes of ``stream`` in chunks of at most ``chunk_bytes``."""
    while chunk := stream.read(chunk_bytes):
        yield chunk


def read_tmx_file(path: Path, source_lang: str, target_lang: str) -> Iterator[SegmentPair]:
    """Yield the pairs of a TMX file (streamed); errors name the file and line."""
    path = Path(path)
    with path.open("rb") as stream:
        try:
            yield from parse_tmx(read_chunks(stream), source_lang, target_lang)
        except TmxError as exc:
            raise TmxError(f"{path}: {exc.reason}", line=exc.line, code=exc.code) from exc
