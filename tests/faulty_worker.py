"""A translation worker whose model raises on segments containing ``POISON`` (fault injection for tests).

Everything else is the real worker: ``python -m tests.faulty_worker`` with the usual ``BT_*`` settings.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs.schemas import TranslationOptions
from worker import __main__ as worker_main
from worker.translator import Translator

#: Source text that makes the injected fault fire.
POISON = "POISON"

_real_translate_tokens = Translator.translate_tokens


def _faulty_translate_tokens(
    self: Translator, sources: Sequence[Sequence[str]], options: TranslationOptions
) -> list[list[str]]:
    if any(POISON in "".join(tokens).replace("▁", "") for tokens in sources):
        raise RuntimeError("injected fault: the model cannot translate this input")
    return _real_translate_tokens(self, sources, options)


if __name__ == "__main__":
    Translator.translate_tokens = _faulty_translate_tokens  # type: ignore[method-assign]
    worker_main.main()
