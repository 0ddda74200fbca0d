"""The whole benchmark: which rows run, in what order, how often, and the figures they produce.

Repeats are interleaved (L, S-big, S-small, naive, HF for one beam, then the next beam, then the next repeat) so that
the machine's noise — other engineers' tests share these two cores — hits every row alike, and every ratio is taken
between rows of the same repeat.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import service
from bench.api_load import api_load
from bench.corpus import PseudoLanguage
from bench.model import BenchModel, build_bench_model
from bench.raw import Decoding, HfGenerator, Layout, Timing, limit_row, naive_row, search_layout, warm_up
from bench.stack import Stack, StackConfig
from worker.translator import Translator

log = logging.getLogger(__name__)

#: Seed of the benchmark sentences (the vocabulary was trained on other draws of the same language).
SENTENCE_SEED = 1_000
#: Layouts L tries before the timed repeats (DESIGN.md measured the first as best; the others are its neighbours).
LAYOUT_CANDIDATES = (Layout(2, 1, 32), Layout(2, 1, 16), Layout(1, 2, 32), Layout(2, 1, 64))
#: Row names, in table order.
ROWS = ("L", "S-big", "S-small", "naive", "HF")


@dataclass(frozen=True)
class Plan:
    """How much the benchmark does. ``full()`` is ``make bench``; ``quick()`` a smoke run of every row."""

    sentences: int
    repeats: int
    hf_repeats: int
    hf_sentences: int = 64  #: HF translates the first this many of the sentences (it is ~20x slower than L)
    length: int = 30  #: target tokens per segment (min = max decoding length)
    beams: tuple[int, ...] = (4, 1)
    big_job_segments: int = 100
    search_layout: bool = True
    api_jobs: int = 4_000
    api_seconds: float = 6.0
    api_concurrency: tuple[int, ...] = (4, 8, 16, 32)
    latency_repeats: int = 5
    latency_segments: int = 10
    delivery_callbacks: int = 300
    sanity_sentences: int = 200
    sanity: bool = True
    demo_preset: str | None = "demo"  #: demo model for the sanity row (None: skip unless one is built)
    store: str = "postgresql"
    worker_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def full(cls) -> Plan:
        return cls(sentences=200, repeats=3, hf_repeats=1)

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            sentences=100,
            repeats=1,
            hf_repeats=1,
            hf_sentences=32,
            search_layout=False,
            api_jobs=1_000,
            api_seconds=3.0,
            api_concurrency=(16,),
            latency_repeats=2,
            delivery_callbacks=100,
            sanity_sentences=50,
            demo_preset=None,
        )

    @property
    def decodings(self) -> list[Decoding]:
        return [Decoding(beam, self.length) for beam in self.beams]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import ctranslate2
    import torch
    import transformers

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "ctranslate2": ctranslate2.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_average_at_start": os.getloadavg(),
    }


class Suite:
    """Runs a :class:`Plan` and returns every figure as one JSON-ready dict."""

    def __init__(self, plan: Plan, var_dir: Path) -> None:
        self.plan = plan
        self.var_dir = var_dir
        self.cores = os.cpu_count() or 2
        self.timings: dict[tuple[int, str], list[Timing]] = {}
        self.extra: dict[tuple[int, str], list[dict[str, Any]]] = {}

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        results: dict[str, Any] = {"machine": machine(), "plan": asdict(self.plan)}
        model = build_bench_model(self.var_dir)
        results["model"] = {"dir": str(model.ct2_dir), "spec": "Marian d512 6+6 h8 ffn2048, vocab ~32k, int8"}
        sentences = PseudoLanguage().sentences(self.plan.sentences, seed=SENTENCE_SEED)
        probe = Translator(model.ct2_dir, Layout(2, 1, 32).config())
        tokens = probe.tokenize(sentences)
        probe.close()
        results["source_tokens_per_segment"] = round(sum(map(len, tokens)) / len(tokens), 1)

        layout = LAYOUT_CANDIDATES[0]
        if self.plan.search_layout:
            log.info("searching the best layout for L (%d candidates)", len(LAYOUT_CANDIDATES))
            layout, tried = search_layout(model.ct2_dir, tokens, self.plan.decodings, LAYOUT_CANDIDATES)
            results["layout_search"] = tried
        results["layout"] = layout.to_dict()
        log.info("L layout: %s", layout.label())

        stack_config = StackConfig(
            model_dir=model.ct2_dir,
            layout=layout,
            run_dir=self.var_dir / "run",
            store=self.plan.store,
            worker_env=self.plan.worker_env,
        )
        with Stack(stack_config) as stack:
            service.warm_up(stack, sentences, self.plan.decodings)
            self._repeats(stack, model, layout, sentences, tokens)
            results["latency"] = self._latency(stack, model, layout, sentences)
            results["delivery"] = service.delivery_throughput(stack, self.plan.delivery_callbacks)
            results["api"] = [
                api_load(stack, max_jobs=self.plan.api_jobs, max_seconds=self.plan.api_seconds, concurrency=c)
                for c in self.plan.api_concurrency
            ]
            results["worker_peak_rss_bytes"] = stack.peak_rss_bytes("worker")
            results["sanity"] = self._sanity(stack, layout)
        results["rows"], results["ratios"] = self._tables()
        results["service_cpu_seconds"] = {
            f"beam{beam}": {row: extras for (b, row), extras in self.extra.items() if b == beam}
            for beam in self.plan.beams
        }
        results["cpu_ms_per_segment"] = self._cpu_per_segment()
        results["duration_s"] = round(time.monotonic() - started, 1)
        return results

    # -- the repeated rows ----------------------------------------------------------------------------------
    def _repeats(
        self, stack: Stack, model: BenchModel, layout: Layout, sentences: list[str], tokens: list[list[str]]
    ) -> None:
        limit = Translator(model.ct2_dir, layout.config())
        naive = Translator(model.ct2_dir, Layout(self.cores, 1, 1).config())
        hf = HfGenerator(model.checkpoint_dir, threads=self.cores)
        try:
            for decoding in self.plan.decodings:
                warm_up(limit, tokens, decoding)
                warm_up(naive, tokens, decoding)
                hf.warm_up(sentences, decoding)
            for repeat in range(self.plan.repeats):
                for decoding in self.plan.decodings:
                    beam = decoding.beam_size
                    log.info("repeat %d/%d, beam %d", repeat + 1, self.plan.repeats, beam)
                    self._add(beam, "L", limit_row(limit, tokens, decoding))
                    label = f"r{repeat}-b{beam}"
                    big = service.run_jobs(stack, sentences, self.plan.big_job_segments, decoding, f"big-{label}")
                    self._add(beam, "S-big", big.timing, {"cpu_seconds": big.cpu_seconds})
                    small = service.run_jobs(stack, sentences, 1, decoding, f"small-{label}")
                    self._add(
                        beam,
                        "S-small",
                        small.timing,
                        {"cpu_seconds": small.cpu_seconds, "submit_seconds": round(small.submit_seconds, 3)},
                    )
                    self._add(beam, "naive", naive_row(naive, tokens, decoding))
                    if repeat < self.plan.hf_repeats:
                        self._add(beam, "HF", hf.run(sentences[: self.plan.hf_sentences], decoding))
        finally:
            limit.close()
            naive.close()
            del hf

    def _add(self, beam: int, row: str, timing: Timing, extra: dict[str, Any] | None = None) -> None:
        log.info("  %-8s %7.1f tokens/s  %6.2f segments/s", row, timing.tokens_per_s, timing.segments_per_s)
        self.timings.setdefault((beam, row), []).append(timing)
        if extra is not None:
            self.extra.setdefault((beam, row), []).append(extra)

    def _tables(self) -> tuple[dict[str, Any], dict[str, Any]]:
        rows: dict[str, Any] = {}
        ratios: dict[str, Any] = {}
        pairs = (("S-big", "L"), ("S-small", "L"), ("S-small", "naive"), ("L", "HF"), ("L", "naive"))
        for beam in self.plan.beams:
            rows[f"beam{beam}"] = {
                row: {
                    "tokens_per_s": summary([t.tokens_per_s for t in timings]),
                    "segments_per_s": summary([t.segments_per_s for t in timings]),
                    "seconds": [round(t.seconds, 3) for t in timings],
                    "repeats": len(timings),
                }
                for row in ROWS
                if (timings := self.timings.get((beam, row)))
            }
            ratios[f"beam{beam}"] = {}
            for top, bottom in pairs:
                a, b = self.timings.get((beam, top), []), self.timings.get((beam, bottom), [])
                values = [x.tokens_per_s / y.tokens_per_s for x, y in zip(a, b, strict=False)]
                if values:
                    ratios[f"beam{beam}"][f"{top}/{bottom}"] = summary(values)
        return rows, ratios

    def _cpu_per_segment(self) -> dict[str, dict[str, dict[str, float]]]:
        """Median CPU milliseconds per segment of each process in the S rows (what each job costs the cores)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for (beam, row), extras in self.extra.items():
            names = extras[0]["cpu_seconds"].keys()
            out.setdefault(f"beam{beam}", {})[row] = {
                name: round(statistics.median(e["cpu_seconds"][name] for e in extras) * 1000 / self.plan.sentences, 2)
                for name in names
            }
        return out

    # -- single measurements --------------------------------------------------------------------------------
    def _latency(self, stack: Stack, model: BenchModel, layout: Layout, sentences: list[str]) -> dict[str, Any]:
        """Submit → callback of one 10-segment job on the idle service, against raw translation of the same."""
        segments = sentences[: self.plan.latency_segments]
        decoding = self.plan.decodings[0]
        translator = Translator(model.ct2_dir, layout.config())
        try:
            tokens = translator.tokenize(segments)
            warm_up(translator, tokens, decoding)
            raw = [limit_row(translator, tokens, decoding).seconds for _ in range(self.plan.latency_repeats)]
        finally:
            translator.close()
        end_to_end = [
            service.submit_to_callback_s(stack, segments, decoding, f"latency-{i}")
            for i in range(self.plan.latency_repeats)
        ]
        raw_s, e2e_s = statistics.median(raw), statistics.median(end_to_end)
        return {
            "segments": len(segments),
            "beam_size": decoding.beam_size,
            "raw_translation_s": summary(raw),
            "submit_to_callback_s": summary(end_to_end),
            "overhead_ms": round((e2e_s - raw_s) * 1000, 1),
        }

    def _sanity(self, stack: Stack, layout: Layout) -> dict[str, Any]:
        """The trained demo model with real outputs: raw CTranslate2 and the service must agree."""
        from retrain.demo import build_demo_model, demo_pairs
        from retrain.split import split_pairs

        demo_dir = self.var_dir.parent / "demo-model"
        if not self.plan.sanity:
            return {"skipped": "--no-sanity"}
        if self.plan.demo_preset is None:
            if not (demo_dir / "model.bin").is_file():
                return {"skipped": "no demo model built (run `make demo` or the full benchmark)"}
        else:
            build_demo_model(demo_dir, preset=self.plan.demo_preset)
        held_out = split_pairs(demo_pairs("demo")).test[: self.plan.sanity_sentences]
        sources = [pair.source for pair in held_out]
        translator = Translator(demo_dir, layout.config())
        try:
            tokens = translator.tokenize(sources)
            options = Decoding(4, 256).options().model_copy(update={"min_decoding_length": 0})
            translator.translate_tokens(tokens[:4], options)
            started = time.perf_counter()
            outputs = translator.translate_tokens(tokens, options)
            raw_s = time.perf_counter() - started
            raw_texts = translator.detokenize(outputs)
        finally:
            translator.close()
        stack.start_worker(demo_dir)
        started = time.monotonic()
        served = service.service_outputs(stack, sources, self.plan.big_job_segments, "sanity")
        service_s = time.monotonic() - started
        target_tokens = sum(len(o) for o in outputs)
        exact = sum(text == pair.target for text, pair in zip(raw_texts, held_out, strict=True))
        return {
            "model": str(demo_dir),
            "segments": len(sources),
            "beam_size": 4,
            "raw_tokens_per_s": round(target_tokens / raw_s, 1),
            "service_tokens_per_s": round(target_tokens / service_s, 1),
            "exact_match": round(exact / len(sources), 3),
            "service_equals_raw": sum(a == b for a, b in zip(served, raw_texts, strict=True)),
            "examples": [
                {"source": pair.source, "reference": pair.target, "output": text}
                for pair, text in list(zip(held_out, raw_texts, strict=True))[:3]
            ],
        }
