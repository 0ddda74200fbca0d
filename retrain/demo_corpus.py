"""A deterministic English→French demo corpus of number phrases, written out by ``num2words``.

Real language with multi-word targets and real grammar to learn — ``"three hundred and twelve"`` →
``"trois cent douze"``, ``"one euro"`` → ``"un euro"`` but ``"two euros"`` → ``"deux euros"``, ``"the twenty-first
floor"`` → ``"le vingt et unième étage"`` — small enough that a tiny Marian model learns it in minutes on a CPU.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from num2words import num2words

from retrain.corpus import Pair, dedupe

log = logging.getLogger(__name__)

#: Language pair of the demo corpus.
SOURCE_LANG = "en"
TARGET_LANG = "fr"
#: ``origin`` of every generated pair.
ORIGIN = "demo-corpus"
#: Attempts per requested pair before giving up on filling the corpus (the phrase space may be smaller).
_ATTEMPTS_PER_PAIR = 20

# num2words 0.5 spells some French ordinals with the plural "s" of "quatre-vingts"/"cents" kept.
_FRENCH_ORDINAL_FIXES = (("vingtsième", "vingtième"), ("centsième", "centième"))


def english_cardinal(n: int) -> str:
    """``1234`` → ``"one thousand two hundred and thirty-four"`` (num2words' comma dropped)."""
    return str(num2words(n, lang="en")).replace(",", "")


def french_cardinal(n: int) -> str:
    """``1234`` → ``"mille deux cent trente-quatre"``."""
    return str(num2words(n, lang="fr"))


def english_ordinal(n: int) -> str:
    """``21`` → ``"twenty-first"``."""
    return str(num2words(n, lang="en", to="ordinal")).replace(",", "")


def french_ordinal(n: int) -> str:
    """``21`` → ``"vingt et unième"``, ``1`` → ``"premier"``, ``80`` → ``"quatre-vingtième"``."""
    text = str(num2words(n, lang="fr", to="ordinal"))
    for wrong, right in _FRENCH_ORDINAL_FIXES:
        text = text.replace(wrong, right)
    return text


@dataclass(frozen=True)
class Template:
    """One phrasing: how to say number ``n`` in each language (``None`` where the phrase does not apply)."""

    name: str
    weight: float
    render: Callable[[int], tuple[str, str] | None]


def _counted(en_singular: str, en_plural: str, fr_singular: str, fr_plural: str) -> Callable[[int], tuple[str, str]]:
    """``n`` of a masculine French noun: singular below two in French, only for one in English."""

    def render(n: int) -> tuple[str, str]:
        en = f"{english_cardinal(n)} {en_singular if n == 1 else en_plural}"
        fr = f"{french_cardinal(n)} {fr_singular if n < 2 else fr_plural}"
        return en, fr

    return render


def _ordinal(en_noun: str, fr_noun: str) -> Callable[[int], tuple[str, str] | None]:
    def render(n: int) -> tuple[str, str] | None:
        if n < 1:
            return None
        return f"the {english_ordinal(n)} {en_noun}", f"le {french_ordinal(n)} {fr_noun}"

    return render


def _bare_ordinal(n: int) -> tuple[str, str] | None:
    return (english_ordinal(n), french_ordinal(n)) if n >= 1 else None


#: The phrasings, with how often each is drawn.
TEMPLATES: tuple[Template, ...] = (
    Template("cardinal", 3.0, lambda n: (english_cardinal(n), french_cardinal(n))),
    Template("euros", 1.0, _counted("euro", "euros", "euro", "euros")),
    Template("days", 1.0, _counted("day", "days", "jour", "jours")),
    Template("books", 1.0, _counted("book", "books", "livre", "livres")),
    Template("page", 1.0, lambda n: (f"page {english_cardinal(n)}", f"page {french_cardinal(n)}")),
    Template("ordinal", 1.0, _bare_ordinal),
    Template("floor", 1.0, _ordinal("floor", "étage")),
)


def _draw_number(rng: random.Random, max_number: int) -> int:
    """Pick a magnitude uniformly (by number of digits), then a number of that magnitude, so small numbers and
    every word of the number system are well represented."""
    digits = rng.randint(1, len(str(max_number)))
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, min(max_number, 10**digits - 1))


def generate_pairs(count: int = 20_000, max_number: int = 9_999, seed: int = 0) -> list[Pair]:
    """``count`` distinct English→French number phrases (fewer if the phrase space is smaller), reproducibly.

    The same arguments always give the same pairs in the same order.
    """
    if not 0 <= max_number < 1_000_000:
        # "un million" takes "d'euros": the templates do not know that grammar.
        raise ValueError(f"max_number must be in 0..999999, got {max_number}")
    rng = random.Random(seed)
    weights = [t.weight for t in TEMPLATES]
    seen: set[str] = set()
    pairs: list[Pair] = []
    for _ in range(count * _ATTEMPTS_PER_PAIR):
        if len(pairs) >= count:
            break
        template = rng.choices(TEMPLATES, weights)[0]
        rendered = template.render(_draw_number(rng, max_number))
        if rendered is None or rendered[0] in seen:
            continue
        seen.add(rendered[0])
        pairs.append(Pair(rendered[0], rendered[1], origin=ORIGIN))
    pairs = dedupe(pairs)
    if len(pairs) < count:
        log.warning("demo corpus: asked for %d pairs, the phrase space gave %d", count, len(pairs))
    return pairs
