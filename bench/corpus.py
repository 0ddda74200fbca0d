"""Generated text for the benchmark: a pseudo-language with a Zipf-distributed lexicon, made offline and
deterministically from a seed.

The same generator feeds sentencepiece training (so the vocabulary has ~32k real pieces, as OPUS-MT models do) and
draws the sentences every row translates. Sentences run 8 to 24 words, which the ~32k vocabulary cuts into about
20 to 30 pieces: the length of ordinary OPUS-MT segments.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

_ONSETS = ("", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sk", "st", "th", "tr")  # fmt: skip
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y")
_CODAS = ("", "", "", "n", "r", "s", "t", "l", "m", "nd", "rk", "st", "x")


@dataclass(frozen=True)
class CorpusSpec:
    """Shape of the pseudo-language."""

    lexicon_size: int = 60_000  #: distinct words
    zipf_exponent: float = 1.05
    min_words: int = 8
    max_words: int = 24
    seed: int = 0


def _syllables(rng: random.Random) -> str:
    count = rng.choice((1, 1, 2, 2, 2, 3, 3, 4))
    return "".join(rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(count))


class PseudoLanguage:
    """Draws sentences of pseudo-words; the same spec and seed give the same sentences."""

    def __init__(self, spec: CorpusSpec | None = None) -> None:
        self.spec = spec or CorpusSpec()
        rng = random.Random(self.spec.seed)
        words: dict[str, None] = {}
        while len(words) < self.spec.lexicon_size:
            words.setdefault(_syllables(rng), None)
        self.words = list(words)
        weights = [1.0 / (rank**self.spec.zipf_exponent) for rank in range(1, len(self.words) + 1)]
        self._cumulative = list(itertools.accumulate(weights))

    def sentences(self, count: int, seed: int) -> list[str]:
        """``count`` sentences drawn with ``seed`` (capitalised, with a full stop)."""
        rng = random.Random(seed)
        out: list[str] = []
        for _ in range(count):
            length = rng.randint(self.spec.min_words, self.spec.max_words)
            words = rng.choices(self.words, cum_weights=self._cumulative, k=length)
            text = " ".join(words)
            out.append(text[:1].upper() + text[1:] + ".")
        return out
