"""Parallel data in: ``POST /v1/corpus/{pair}`` (JSON lines and TMX) on a real store, the corpus directory reader,
and the hash split staying put as the corpus grows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from jobs.parallel_corpus import ParallelCorpus
from retrain.corpus import CorpusError, Pair, read_directory, read_store
from retrain.demo_corpus import generate_pairs
from retrain.split import Split, split_of
from webhook_api.main import create_app
from webhook_api.settings import ApiSettings

KEY = "key-of-acme-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSONL = {**AUTH, "Content-Type": "application/x-ndjson"}
TMX = {**AUTH, "Content-Type": "application/x-tmx+xml"}
#: Nothing listens here: corpus intake must not need the broker.
NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"

TMX_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<tmx version="1.4">
  <header srclang="en-US" adminlang="en" datatype="plaintext" segtype="sentence" o-tmf="x" creationtool="x"
          creationtoolversion="1"/>
  <body>
    <tu tuid="1">
      <prop type="x-project">X-42</prop>
      <tuv xml:lang="EN-us"><seg>Click <bpt i="1">&lt;b&gt;</bpt>Save<ept i="1">&lt;/b&gt;</ept> now.</seg></tuv>
      <tuv xml:lang="fr_FR"><seg>Cliquez <bpt i="1">&lt;b&gt;</bpt>Enregistrer<ept i="1">&lt;/b&gt;</ept>.</seg></tuv>
    </tu>
    <tu tuid="2">
      <tuv xml:lang="de-DE"><seg>Seite <ph x="1">{page}</ph> von <ph x="2">{pages}</ph></seg></tuv>
      <tuv xml:lang="en-GB"><seg>Page <ph x="1">{page}</ph> of <ph x="2">{pages}</ph></seg></tuv>
      <tuv xml:lang="fr-CA"><seg>Page <ph x="1">{page}</ph> de <ph x="2">{pages}</ph> (CA)</seg></tuv>
      <tuv xml:lang="fr"><seg>Page <ph x="1">{page}</ph> de <ph x="2">{pages}</ph></seg></tuv>
    </tu>
    <tu tuid="3">
      <tuv lang="en"><seg>The <hi type="b">red</hi> button &amp; the blue one</seg></tuv>
      <tuv lang="fr"><seg>Le bouton <hi type="b">rouge</hi> &amp; le bleu</seg></tuv>
    </tu>
  </body>
</tmx>
"""
#: What the document above holds for en-fr, inline codes flattened.
TMX_PAIRS = [
    ("Click Save now.", "Cliquez Enregistrer."),
    ("Page of", "Page de"),
    ("The red button & the blue one", "Le bouton rouge & le bleu"),
]


def corpus_settings(store_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "broker_url": NO_BROKER,
        "store_url": store_url,
        "api_keys": [f"acme:{KEY}"],
        "pairs": ["en-fr"],
        "max_segment_chars": 200,
        "max_body_bytes": 64_000,
    }
    return ApiSettings(**(values | overrides))


@pytest.fixture
def client(store_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(corpus_settings(store_url))) as test_client:
        yield test_client


def jsonl(*pairs: tuple[str, str]) -> str:
    return "".join(json.dumps({"source": s, "target": t}, ensure_ascii=False) + "\n" for s, t in pairs)


def stored(store_url: str, pair: str = "en-fr") -> list[tuple[str, str]]:
    corpus = ParallelCorpus.from_url(store_url)
    try:
        return [(p.source, p.target) for p in read_store(corpus, pair)]
    finally:
        corpus.engine.dispose()


# --- JSON lines --------------------------------------------------------------------------------------------------


def test_corpus_upload_stores_new_sentences_and_counts_duplicates_when_jsonl_repeats_a_source(
    client: TestClient, store_url: str
) -> None:
    # Given: a first upload
    first = client.post(
        "/v1/corpus/en-fr", content=jsonl(("one euro", "un euro"), ("two euros", "deux euros")), headers=JSONL
    )

    # When: a second upload repeats one sentence (other case and spacing), twice inside itself, and adds one
    second = client.post(
        "/v1/corpus/en-fr",
        content=jsonl(("One  EURO", "un euro !"), ("three euros", "trois euros"), ("THREE euros", "trois euros")),
        headers={**AUTH, "Content-Type": "application/jsonl; charset=utf-8"},
    )

    # Then: each sentence is stored once, first translation kept, in arrival order
    assert first.status_code == 200, first.text
    assert first.json() | {"upload_id": None} == {
        "pair": "en-fr",
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "upload_id": None,
    }
    assert second.status_code == 200, second.text
    assert (second.json()["received"], second.json()["stored"], second.json()["duplicates"]) == (3, 1, 2)
    assert stored(store_url) == [("one euro", "un euro"), ("two euros", "deux euros"), ("three euros", "trois euros")]


def test_corpus_upload_names_the_line_and_stores_nothing_when_a_jsonl_line_lacks_a_side(
    client: TestClient, store_url: str
) -> None:
    # Given: three good lines, a blank one, then a line without a target
    body = jsonl(("one", "un"), ("two", "deux")) + "\n" + jsonl(("three", "trois")) + '{"source": "four"}\n'

    # When
    answer = client.post("/v1/corpus/en-fr", content=body, headers=JSONL)
    broken_json = client.post("/v1/corpus/en-fr", content=jsonl(("one", "un")) + "{oops\n", headers=JSONL)

    # Then
    assert answer.status_code == 422, answer.text
    assert answer.json() == {"code": "missing_side", "message": "line 5: target is missing", "field": "line 5.target"}
    assert broken_json.status_code == 400
    assert broken_json.json()["field"] == "line 2"
    assert stored(store_url) == []


def test_corpus_upload_names_the_line_when_a_side_exceeds_the_segment_limit(client: TestClient) -> None:
    answer = client.post("/v1/corpus/en-fr", content=jsonl(("one", "un"), ("two", "d" * 201)), headers=JSONL)

    assert answer.status_code == 422
    assert answer.json()["code"] == "segment_too_long"
    assert answer.json()["field"] == "line 2.target"
    assert "200" in answer.json()["message"]


# --- TMX ---------------------------------------------------------------------------------------------------------


def test_corpus_upload_round_trips_tmx_when_the_memory_uses_regional_tags_and_inline_codes(
    client: TestClient, store_url: str
) -> None:
    # Given: the same memory as CAT tools write it, in UTF-8 and (Trados-style) UTF-16 with a BOM
    utf16 = TMX_DOCUMENT.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")

    # When
    answer = client.post("/v1/corpus/en-fr", content=TMX_DOCUMENT.encode(), headers=TMX)
    again = client.post("/v1/corpus/en-fr", content=utf16, headers={**AUTH, "Content-Type": "text/xml"})

    # Then: en-US/en-GB/en and fr-FR/fr match the pair (exact fr preferred over fr-CA), codes are dropped
    assert answer.status_code == 200, answer.text
    assert (answer.json()["received"], answer.json()["stored"]) == (3, 3)
    assert again.status_code == 200, again.text
    assert (again.json()["received"], again.json()["stored"], again.json()["duplicates"]) == (3, 0, 3)
    assert stored(store_url) == TMX_PAIRS


@pytest.mark.parametrize(
    ("broken", "status", "code", "field"),
    [
        # the second unit has no French variant
        ('<tuv xml:lang="fr"><seg>Page', 422, "missing_side", "line 11"),
        # a <tuv> without a language
        ('<tuv lang="en">', 400, "malformed_tmx", "line 18"),
        # not well-formed: a tag left open
        ("</body>", 400, "malformed_tmx", "line 22"),
    ],
    ids=["unit-without-target", "variant-without-language", "unclosed-tag"],
)
def test_corpus_upload_names_the_line_and_stores_nothing_when_tmx_is_malformed(
    client: TestClient, store_url: str, broken: str, status: int, code: str, field: str
) -> None:
    # Given: the memory with one defect after a valid first unit
    replacement = {
        '<tuv xml:lang="fr"><seg>Page': '<tuv xml:lang="es"><seg>Page',
        '<tuv lang="en">': "<tuv>",
        "</body>": "",
    }[broken]
    document = TMX_DOCUMENT.replace(broken, replacement)
    if broken.startswith('<tuv xml:lang="fr">'):
        document = document.replace('<tuv xml:lang="fr-CA">', '<tuv xml:lang="it">')

    # When
    answer = client.post("/v1/corpus/en-fr", content=document.encode(), headers=TMX)

    # Then
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert answer.json()["field"] == field
    assert answer.json()["message"].startswith(f"{field}: ")
    assert stored(store_url) == []


def test_corpus_upload_refuses_the_document_when_tmx_declares_a_doctype(client: TestClient, store_url: str) -> None:
    # Given: a billion-laughs document
    bomb = (
        '<?xml version="1.0"?>\n<!DOCTYPE tmx [\n<!ENTITY a "aaaaaaaaaa">\n<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">\n]>\n'
        '<tmx version="1.4"><header srclang="en"/><body><tu><tuv xml:lang="en"><seg>&b;</seg></tuv>'
        '<tuv xml:lang="fr"><seg>x</seg></tuv></tu></body></tmx>'
    )

    # When
    answer = client.post("/v1/corpus/en-fr", content=bomb.encode(), headers=TMX)

    # Then
    assert answer.status_code == 400
    assert answer.json()["code"] == "forbidden_xml"
    assert "DOCTYPE" in answer.json()["message"]
    assert answer.json()["field"] == "line 2"
    assert stored(store_url) == []


# --- what the endpoint refuses -----------------------------------------------------------------------------------


def test_corpus_upload_refuses_the_request_when_pair_type_size_or_key_is_wrong(sqlite_url: str) -> None:
    # Given
    settings = corpus_settings(sqlite_url, max_body_bytes=2_048)
    body = jsonl(("one", "un"))
    with TestClient(create_app(settings)) as client:
        # When
        unknown_pair = client.post("/v1/corpus/en-de", content=body, headers=JSONL)
        wrong_type = client.post("/v1/corpus/en-fr", content=body, headers={**AUTH, "Content-Type": "text/csv"})
        too_large = client.post("/v1/corpus/en-fr", content=jsonl(*[("one", "un")] * 200), headers=JSONL)
        empty = client.post("/v1/corpus/en-fr", content=b"\n\n", headers=JSONL)
        no_key = client.post("/v1/corpus/en-fr", content=body, headers={"Content-Type": "application/x-ndjson"})

    # Then
    assert (unknown_pair.status_code, unknown_pair.json()["code"], unknown_pair.json()["field"]) == (
        422,
        "unsupported_pair",
        "pair",
    )
    assert (wrong_type.status_code, wrong_type.json()["field"]) == (415, "Content-Type")
    assert "application/x-tmx+xml" in wrong_type.json()["message"]
    assert (too_large.status_code, too_large.json()["code"]) == (413, "body_too_large")
    assert (empty.status_code, empty.json()["code"]) == (422, "empty_upload")
    assert no_key.status_code == 401
    assert stored(sqlite_url) == []


# --- the corpus directory ----------------------------------------------------------------------------------------


def test_read_directory_reads_tsv_tmx_and_jsonl_when_files_sit_in_the_pair_directory(tmp_path: Path) -> None:
    # Given
    (tmp_path / "2024").mkdir()
    (tmp_path / "2024" / "a.tsv").write_text("one\tun\ntwo\tdeux\n", encoding="utf-8")
    (tmp_path / "b.tmx").write_text(TMX_DOCUMENT, encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(jsonl(("three", "trois")), encoding="utf-8")
    (tmp_path / "README.md").write_text("not a corpus", encoding="utf-8")
    (tmp_path / ".partial.tsv").write_text("broken line", encoding="utf-8")

    # When
    pairs = list(read_directory(tmp_path, "en", "fr"))

    # Then: path order, every format, other and hidden files skipped
    assert [(p.source, p.target, p.origin) for p in pairs] == [
        ("one", "un", "a.tsv"),
        ("two", "deux", "a.tsv"),
        *[(s, t, "b.tmx") for s, t in TMX_PAIRS],
        ("three", "trois", "c.jsonl"),
    ]


def test_read_directory_names_file_and_line_when_a_tmx_unit_lacks_the_target(tmp_path: Path) -> None:
    (tmp_path / "memory.tmx").write_text(TMX_DOCUMENT.replace('<tuv lang="fr">', '<tuv lang="de">'), "utf-8")

    with pytest.raises(CorpusError, match=r"memory\.tmx:17: <tu> has no 'fr' variant"):
        list(read_directory(tmp_path, "en", "fr"))


# --- the hash split as the corpus grows --------------------------------------------------------------------------


def test_split_of_every_stored_pair_is_unchanged_when_the_corpus_grows(sqlite_url: str) -> None:
    # Given: a corpus uploaded through the API, split as retrain reads it back
    pairs = generate_pairs(count=1_200, max_number=999, seed=7)
    first, later = pairs[:600], pairs[600:]
    with TestClient(create_app(corpus_settings(sqlite_url, max_body_bytes=1_000_000))) as client:
        answer = client.post("/v1/corpus/en-fr", content=jsonl(*[(p.source, p.target) for p in first]), headers=JSONL)
        assert answer.status_code == 200, answer.text
        before = {p.key: split_of(p.source) for p in _read(sqlite_url)}
        test_before = {key for key, split in before.items() if split is Split.TEST}

        # When: more pairs arrive, among them shouted copies of yesterday's test sentences
        shouted = [(f"  {p.source.upper()} ", p.target) for p in first if p.key in test_before]
        answer = client.post(
            "/v1/corpus/en-fr",
            content=jsonl(*[(p.source, p.target) for p in later], *shouted),
            headers=JSONL,
        )
        assert answer.status_code == 200, answer.text
    after = {p.key: split_of(p.source) for p in _read(sqlite_url)}

    # Then: no old pair moved, the test split grew and still holds all of yesterday's, the copies were duplicates
    assert test_before, "the first corpus must have a test split for this test to mean anything"
    assert {key: after[key] for key in before} == before
    test_after = {key for key, split in after.items() if split is Split.TEST}
    assert test_before < test_after
    assert answer.json()["duplicates"] >= len(shouted) > 0
    assert len(after) == len({p.key for p in pairs})


def _read(store_url: str) -> list[Pair]:
    corpus = ParallelCorpus.from_url(store_url)
    try:
        return list(read_store(corpus, "en-fr"))
    finally:
        corpus.engine.dispose()
