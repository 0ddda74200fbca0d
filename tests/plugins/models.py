"""Fixtures that train and hand out real tiny models.

``tiny_model_dir`` really trains the "test" preset (corpus → sentencepiece → Marian → CTranslate2) once per test
session, in well under a minute on 2 CPU cores; nothing is cached across runs. ``retrain`` (torch, transformers) is
imported inside the fixtures, so sessions that need no model do not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from retrain.corpus import Pair

#: Preset of the session's tiny model.
TINY_PRESET = "test"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A served model directory (English→French number phrases) trained for this test session."""
    from retrain.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "tiny-en-fr", preset=TINY_PRESET)


@pytest.fixture(scope="session")
def tiny_corpus_pairs() -> list[Pair]:
    """The corpus the tiny model is built from."""
    from retrain.demo import demo_pairs

    return demo_pairs(TINY_PRESET)


@pytest.fixture(scope="session")
def held_out_pairs(tiny_corpus_pairs: list[Pair]) -> list[Pair]:
    """The test split of the tiny model's corpus: pairs it never saw in training."""
    from retrain.split import split_pairs

    return split_pairs(tiny_corpus_pairs).test
