"""The continuous-training loop against a real ``mlflow server``, a real store and real (tiny) models.

The corpus grows in steps, and each step runs ``retrain run --pair en-fr`` as the CronJob does:

1. 1,500 pairs uploaded → v1 is trained from scratch and promoted (no champion yet);
2. 40 more pairs → too little new data: exit 0, nothing registered, no MLflow run;
3. 1,500 more pairs in a TMX file of the data directory → v2 is fine-tuned from v1's checkpoint, both are scored on
   the grown test split, and the gate decides;
4. a deliberately worse candidate (5 steps from scratch, forced) → registered, not promoted, tagged with why.

The steps are module fixtures that depend on each other, so each test can also run alone. Training is bounded by
steps (reproducible), with a time bound as a safety net; one torch thread (measured ~7x faster than two on a busy
2-core machine).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import mlflow.artifacts
import pytest
from mlflow import MlflowClient

from jobs.model_dir import MODEL_INFO_FILE, SOURCE_SPM, TARGET_SPM, ModelInfo
from jobs.parallel_corpus import ParallelCorpus, SegmentPair
from retrain.__main__ import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from retrain.corpus import Pair
from retrain.demo_corpus import generate_pairs
from worker.translator import Translator

log = logging.getLogger(__name__)

PAIR = "en-fr"
#: Gate margin of the scenario, in chrF points.
MARGIN = 0.5
#: Steps of the first model, and of the fine-tuned second one.
V1_STEPS = 120
V2_STEPS = 300
#: Steps of the deliberately worse candidate.
WORSE_STEPS = 5
#: What the first model must reach on its test split (measured here: chrF ~80 after 300 steps).
MIN_V1_CHRF = 40.0


@dataclass
class CliRun:
    """One ``retrain`` invocation: exit code, the JSON summary on stdout, and stderr."""

    code: int
    summary: dict[str, Any]
    stderr: str


def retrain(env: dict[str, str], *argv: str) -> CliRun:
    """Run the ``retrain`` CLI in-process with ``env`` set, as the CronJob would run it."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
    text = out.getvalue()
    run = CliRun(code, json.loads(text) if text.strip() else {}, err.getvalue())
    log.info("retrain %s -> exit %d: %s", " ".join(argv), code, json.dumps(run.summary))
    return run


@dataclass
class Scenario:
    """The pair's world: store, data directory, registry and the settings every run sees."""

    env: dict[str, str]
    name: str
    store_url: str
    data_dir: Path
    client: MlflowClient

    def upload(self, pairs: list[Pair]) -> None:
        corpus = ParallelCorpus.from_url(self.store_url)
        try:
            corpus.create_schema()
            corpus.add(PAIR, [SegmentPair(p.source, p.target) for p in pairs], client="tms", origin="test")
        finally:
            corpus.engine.dispose()

    def champion(self) -> str:
        return str(self.client.get_model_version_by_alias(self.name, "champion").version)

    def versions(self) -> list[str]:
        return sorted((v.version for v in self.client.search_model_versions(f"name = '{self.name}'")), key=int)

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)

    def run_id(self, version: str, name: str | None = None) -> str:
        run_id = self.client.get_model_version(name or self.name, version).run_id
        assert run_id, f"version {version} has no run"
        return str(run_id)

    def metrics(self, version: str) -> dict[str, float]:
        return dict(self.client.get_run(self.run_id(version)).data.metrics)

    def runs(self) -> int:
        experiment = self.client.get_experiment_by_name(self.name)
        return 0 if experiment is None else len(self.client.search_runs([experiment.experiment_id]))


def write_tmx(pairs: list[Pair], path: Path) -> None:
    units = "".join(
        f'<tu><tuv xml:lang="en-US"><seg>{escape(p.source)}</seg></tuv>'
        f'<tuv xml:lang="fr-FR"><seg>{escape(p.target)}</seg></tuv></tu>\n'
        for p in pairs
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header srclang="en-US"/><body>\n{units}'
        "</body></tmx>\n",
        encoding="utf-8",
    )


# --- the scenario, step by step ----------------------------------------------------------------------------------

CORPUS = generate_pairs(count=3_040, max_number=999, seed=11)
FIRST, TRICKLE, LATER = CORPUS[:1_500], CORPUS[1_500:1_540], CORPUS[1_540:]


@pytest.fixture(scope="module")
def scenario(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("ct")
    name_template = f"ct-{uuid.uuid4().hex[:8]}-{{pair}}"
    env = {
        "BT_STORE_URL": f"sqlite:///{root / 'store.db'}",
        "BT_RETRAIN_TRACKING_URI": mlflow_uri,
        "BT_RETRAIN_MODEL_NAME_TEMPLATE": name_template,
        "BT_RETRAIN_DATA_DIR": str(root / "corpus"),
        "BT_RETRAIN_WORK_DIR": str(root / "work"),
        "BT_RETRAIN_PRESET": "test",
        "BT_RETRAIN_MIN_NEW_PAIRS": "300",
        "BT_RETRAIN_MIN_NEW_SHARE": "0.25",
        "BT_RETRAIN_GATE_METRIC": "chrf",
        "BT_RETRAIN_GATE_MARGIN": str(MARGIN),
        "BT_RETRAIN_MAX_TIME_S": "300",
        "BT_RETRAIN_THREADS": "1",
        "BT_RETRAIN_DEVICE": "cpu",
    }
    yield Scenario(
        env=env,
        name=name_template.replace("{pair}", PAIR),
        store_url=env["BT_STORE_URL"],
        data_dir=root / "corpus",
        client=MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri),
    )


@pytest.fixture(scope="module")
def first_run(scenario: Scenario) -> CliRun:
    scenario.upload(FIRST)
    return retrain(scenario.env, "run", "--pair", PAIR, "--max-steps", str(V1_STEPS))


@pytest.fixture(scope="module")
def idle_run(scenario: Scenario, first_run: CliRun) -> tuple[CliRun, int]:
    runs_before = scenario.runs()
    scenario.upload(TRICKLE)
    return retrain(scenario.env, "run", "--pair", PAIR), runs_before


@pytest.fixture(scope="module")
def second_run(scenario: Scenario, idle_run: tuple[CliRun, int]) -> CliRun:
    write_tmx(LATER, scenario.data_dir / PAIR / "2024-06" / "memory.tmx")
    return retrain(scenario.env, "run", "--pair", PAIR, "--max-steps", str(V2_STEPS))


@pytest.fixture(scope="module")
def worse_run(scenario: Scenario, second_run: CliRun) -> tuple[CliRun, str]:
    champion = scenario.champion()
    run = retrain(scenario.env, "run", "--pair", PAIR, "--force", "--start", "scratch", "--max-steps", str(WORSE_STEPS))
    return run, champion


# --- the tests ---------------------------------------------------------------------------------------------------


def test_retrain_run_trains_and_promotes_v1_when_the_first_corpus_arrives(
    scenario: Scenario, first_run: CliRun, tmp_path: Path
) -> None:
    # Then: exit 0, version 1 is the champion, with its gate decision, data snapshot and scores recorded
    assert first_run.code == EXIT_OK, first_run.stderr[-3000:]
    assert first_run.summary["outcome"] == "promoted"
    assert first_run.summary["trained_from"] == "scratch"
    assert scenario.versions() == ["1"]
    assert scenario.champion() == "1"
    tags = scenario.tags("1")
    assert tags["gate.decision"] == "promoted"
    assert tags["data.train_pairs"] == str(first_run.summary["new_pairs"])
    assert int(tags["data.test_pairs"]) == first_run.summary["test_pairs"] > 0
    assert tags["code_version"]
    metrics = scenario.metrics("1")
    assert metrics["test_chrf"] == pytest.approx(first_run.summary["candidate"]["chrf"])
    assert metrics["test_chrf"] >= MIN_V1_CHRF
    assert {"test_bleu", "train_steps", "new_pairs"} <= set(metrics)

    # And: what a worker downloads by alias (MLFLOW_TRACKING_URI set, as the chart does) is a loadable model in the
    # convention, that translates
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", scenario.env["BT_RETRAIN_TRACKING_URI"])
        model_dir = Path(
            mlflow.artifacts.download_artifacts(f"models:/{scenario.name}@champion", dst_path=str(tmp_path))
        )
    assert {"model.bin", "config.json", SOURCE_SPM, TARGET_SPM, MODEL_INFO_FILE} <= {
        p.name for p in model_dir.iterdir()
    }
    info = ModelInfo.read(model_dir)
    assert (info.name, info.version) == (scenario.name, scenario.run_id("1"))
    translator = Translator(model_dir)
    try:
        assert translator.translate(["two hundred and five"])[0].strip()
    finally:
        translator.close()
    run_id = scenario.run_id("1")
    checkpoint = {a.path for a in scenario.client.list_artifacts(run_id, "checkpoint")}
    assert {"checkpoint/config.json", f"checkpoint/{SOURCE_SPM}", "checkpoint/vocab.json"} <= checkpoint


def test_retrain_run_changes_nothing_when_too_little_new_data_arrived(
    scenario: Scenario, idle_run: tuple[CliRun, int]
) -> None:
    run, runs_before = idle_run

    assert run.code == EXIT_OK, run.stderr[-3000:]
    assert run.summary["outcome"] == "skipped"
    assert 0 < run.summary["new_pairs"] < 300
    assert "need 300" in run.summary["reason"]
    assert scenario.versions() == ["1"]
    assert scenario.champion() == "1"
    assert scenario.runs() == runs_before


def test_retrain_run_scores_both_models_on_the_grown_test_split_when_more_data_arrived(
    scenario: Scenario, first_run: CliRun, second_run: CliRun
) -> None:
    # Then: v2 was fine-tuned from v1 and registered, with both scored on today's (larger) test split
    assert second_run.code == EXIT_OK, second_run.stderr[-3000:]
    assert second_run.summary["version"] == "2"
    assert second_run.summary["trained_from"] == "champion:1"
    assert second_run.summary["champion_version"] == "1"
    assert second_run.summary["test_pairs"] > first_run.summary["test_pairs"]
    tags = scenario.tags("2")
    assert int(tags["data.test_pairs"]) == second_run.summary["test_pairs"]
    assert int(tags["data.train_pairs"]) > int(scenario.tags("1")["data.train_pairs"])
    metrics = scenario.metrics("2")
    assert metrics["champion_test_chrf"] == pytest.approx(second_run.summary["champion"]["chrf"])

    # And: the gate decided by the margin, and the alias and tags say the same
    beats = metrics["test_chrf"] - metrics["champion_test_chrf"] >= MARGIN
    assert tags["gate.decision"] == ("promoted" if beats else "rejected")
    assert second_run.summary["outcome"] == tags["gate.decision"]
    assert scenario.champion() == ("2" if beats else "1")
    assert f"margin {MARGIN}" in tags["gate.reason"]


def test_retrain_run_registers_but_does_not_promote_when_the_candidate_is_worse(
    scenario: Scenario, worse_run: tuple[CliRun, str]
) -> None:
    run, champion_before = worse_run

    assert run.code == EXIT_OK, run.stderr[-3000:]
    assert run.summary["outcome"] == "rejected"
    assert run.summary["trained_from"] == "scratch"
    assert scenario.versions() == ["1", "2", "3"]
    assert scenario.champion() == champion_before
    tags = scenario.tags("3")
    assert tags["gate.decision"] == "rejected"
    assert tags["gate.champion_version"] == champion_before
    assert f"vs champion version {champion_before}" in tags["gate.reason"]
    metrics = scenario.metrics("3")
    assert metrics["test_chrf"] < metrics["champion_test_chrf"] - MARGIN
    assert metrics["train_steps"] == WORSE_STEPS


# --- import ------------------------------------------------------------------------------------------------------


def test_retrain_import_registers_models_built_elsewhere_when_given_ct2_or_marian_dirs(
    scenario: Scenario, first_run: CliRun, tmp_path: Path
) -> None:
    # Given: v1's CTranslate2 directory and its Hugging Face checkpoint, as if built elsewhere
    uri = scenario.env["BT_RETRAIN_TRACKING_URI"]
    run_id = scenario.run_id("1")
    ct2_dir = Path(
        mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(tmp_path / "ct2"), tracking_uri=uri)
    )
    marian_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/checkpoint", dst_path=str(tmp_path / "hf"), tracking_uri=uri
        )
    )
    template = f"imported-{uuid.uuid4().hex[:8]}-{{pair}}"
    env = scenario.env | {"BT_RETRAIN_MODEL_NAME_TEMPLATE": template}
    name = template.replace("{pair}", PAIR)

    # When
    as_champion = retrain(env, "import", "--pair", PAIR, "--model-dir", str(ct2_dir), "--champion")
    converted = retrain(env, "import", "--pair", PAIR, "--model-dir", str(marian_dir))

    # Then: both are versions; only the first is champion, and it downloads as a servable model named by the registry
    assert as_champion.code == EXIT_OK, as_champion.stderr[-3000:]
    assert converted.code == EXIT_OK, converted.stderr[-3000:]
    assert (as_champion.summary["kind"], converted.summary["kind"]) == ("ctranslate2", "marian")
    client = scenario.client
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version(name, "1").tags["gate.decision"] == "imported-champion"
    assert client.get_model_version(name, "2").tags["gate.decision"] == "imported"
    assert as_champion.summary["scores"]["segments"] == int(scenario.tags("2")["data.test_pairs"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        served = Path(mlflow.artifacts.download_artifacts(f"models:/{name}@champion", dst_path=str(tmp_path / "s")))
    assert ModelInfo.read(served).name == name
    converted_run = scenario.run_id("2", name)
    assert {a.path for a in client.list_artifacts(converted_run, "model")} >= {"model/model.bin", f"model/{TARGET_SPM}"}
    assert client.list_artifacts(converted_run, "checkpoint")


def test_retrain_import_exits_1_naming_the_problem_when_the_directory_is_not_a_model(
    scenario: Scenario, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("not a model", encoding="utf-8")

    run = retrain(scenario.env, "import", "--pair", PAIR, "--model-dir", str(tmp_path))

    assert run.code == EXIT_FAILED
    assert "neither a CTranslate2 model" in run.stderr


def test_retrain_run_registers_but_does_not_promote_when_the_champion_moved_during_the_run(
    scenario: Scenario, first_run: CliRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a pair with no champion and enough data, and v1's CTranslate2 directory that an operator imports as
    # champion while the run trains (injected right after the real training, before the gate)
    from retrain import pipeline

    uri = scenario.env["BT_RETRAIN_TRACKING_URI"]
    ct2_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{scenario.run_id('1')}/model", dst_path=str(tmp_path / "ct2"), tracking_uri=uri
        )
    )
    template = f"moved-{uuid.uuid4().hex[:8]}-{{pair}}"
    env = scenario.env | {
        "BT_STORE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "BT_RETRAIN_DATA_DIR": str(tmp_path / "corpus"),
        "BT_RETRAIN_MODEL_NAME_TEMPLATE": template,
        "BT_RETRAIN_MIN_NEW_PAIRS": "1",
        "BT_RETRAIN_GATE_MIN_SCORE": "0",
    }
    moved = Scenario(
        env=env,
        name=template.replace("{pair}", PAIR),
        store_url=env["BT_STORE_URL"],
        data_dir=tmp_path / "corpus",
        client=scenario.client,
    )
    moved.upload(generate_pairs(count=400, max_number=999, seed=23))
    train_candidate = pipeline.train_candidate
    imports: list[CliRun] = []

    def train_then_operator_imports(*args: Any, **kwargs: Any) -> Any:
        trained = train_candidate(*args, **kwargs)
        imports.append(retrain(env, "import", "--pair", PAIR, "--model-dir", str(ct2_dir), "--champion"))
        return trained

    monkeypatch.setattr(pipeline, "train_candidate", train_then_operator_imports)

    # When
    run = retrain(env, "run", "--pair", PAIR, "--max-steps", str(WORSE_STEPS))

    # Then: the operator's import (version 1) stays champion; the candidate is version 2, registered, not promoted
    assert [i.code for i in imports] == [EXIT_OK], imports[0].stderr[-3000:] if imports else "no import ran"
    assert run.code == EXIT_OK, run.stderr[-3000:]
    assert run.summary["outcome"] == "rejected"
    assert run.summary["version"] == "2"
    assert moved.versions() == ["1", "2"]
    assert moved.champion() == "1"
    tags = moved.tags("2")
    assert tags["gate.decision"] == "rejected"
    assert "the champion moved from version None to 1 during this run" in tags["gate.reason"]

    # And: the gate alone would have promoted it (no champion when the run began, score above the minimum)
    assert "no champion yet" in tags["gate.reason"]
    assert ">= minimum" in tags["gate.reason"]


def test_retrain_run_exits_2_when_a_setting_is_invalid(scenario: Scenario) -> None:
    run = retrain(scenario.env | {"BT_RETRAIN_GATE_METRIC": "ter"}, "run", "--pair", PAIR)

    assert run.code == EXIT_USAGE
    assert "gate_metric" in run.stderr
