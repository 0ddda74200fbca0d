"""Raw CTranslate2 fed the way the worker feeds it: ``python -m bench.steps``.

The same sentences, cut into token-budget steps as the packer cuts them, translated three ways:

* ``one call``       every sentence in one ``translate_batch`` (the L row);
* ``sequential``     one step at a time, sub-batches of ``max_batch_size`` (the worker before step pipelining);
* ``two in flight``  two steps handed to CTranslate2 at once from two threads, small steps split evenly between
  the replicas (the worker now, see :mod:`worker.consumer`).

No broker, no store: this isolates what the step loop costs the model, and it runs anywhere (``taskset -c 0,1``
gives a quiet two-core slice of a bigger machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.corpus import PseudoLanguage
from bench.model import build_bench_model
from bench.raw import Decoding, Layout
from bench.suite import SENTENCE_SEED
from worker.translator import Translator

log = logging.getLogger(__name__)


def cut_steps(tokens: Sequence[list[str]], budget: int) -> list[list[list[str]]]:
    """Consecutive steps of at most ``budget`` source tokens (at least one sentence each), as the packer cuts."""
    steps: list[list[list[str]]] = [[]]
    used = 0
    for sentence in tokens:
        if steps[-1] and used + len(sentence) > budget:
            steps.append([])
            used = 0
        steps[-1].append(sentence)
        used += len(sentence)
    return steps


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def sequential(translator: Translator, steps: list[list[list[str]]], decoding: Decoding) -> None:
    ct2 = translator._ct2  # the worker before pipelining called CTranslate2 with fixed sub-batches
    assert ct2 is not None
    for step in steps:
        ct2.translate_batch(
            step,
            beam_size=decoding.beam_size,
            min_decoding_length=decoding.length,
            max_decoding_length=decoding.length,
            max_batch_size=translator.config.max_batch_size,
        )


def two_in_flight(translator: Translator, steps: list[list[list[str]]], decoding: Decoding) -> None:
    options = decoding.options()
    lock = threading.Lock()
    queue = list(steps)

    def run() -> None:
        while True:
            with lock:
                if not queue:
                    return
                step = queue.pop(0)
            translator.translate_tokens(step, options)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=384)
    parser.add_argument("--beams", default="4,1", type=lambda v: [int(b) for b in v.split(",")])
    parser.add_argument("--step-tokens", type=int, default=2048, help="the worker's max_batch_tokens")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--var-dir", type=Path, default=Path("var/bench"))
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    model = build_bench_model(args.var_dir)
    translator = Translator(model.ct2_dir, Layout(2, 1, 32).config())
    tokens = translator.tokenize(PseudoLanguage().sentences(args.sentences, seed=SENTENCE_SEED))
    steps = cut_steps(tokens, args.step_tokens)
    modes = {
        "one call": lambda d: translator.translate_tokens(tokens, d.options()),
        "sequential": lambda d: sequential(translator, steps, d),
        "two in flight": lambda d: two_in_flight(translator, steps, d),
    }
    results: dict[str, Any] = {"sentences": len(tokens), "steps": [len(s) for s in steps], "rows": {}}
    print(f"{len(tokens)} sentences in {len(steps)} steps of <= {args.step_tokens} tokens, cpus {os.cpu_count()}")
    for beam in args.beams:
        decoding = Decoding(beam, 30)
        translator.translate_tokens(tokens[:8], decoding.options())
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        cpu: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode, run in modes.items():
                started, cpu_started = time.perf_counter(), _cpu_s()
                run(decoding)
                rates[mode].append(len(tokens) * decoding.length / (time.perf_counter() - started))
                cpu[mode].append(_cpu_s() - cpu_started)
        for mode in modes:
            row = {
                "tokens_per_s": round(statistics.median(rates[mode]), 1),
                "all": [round(r) for r in rates[mode]],
                "cpu_s": round(statistics.median(cpu[mode]), 2),
            }
            results["rows"][f"beam{beam} {mode}"] = row
            print(f"beam {beam} {mode:<14} {row['tokens_per_s']:>8.0f} tokens/s {row}")
    translator.close()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "steps.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
