"""The worker's translation rows on a GPU: ``python -m bench.gpu --device cuda --out DIR``.

One short script for a lent GPU machine (no RabbitMQ or PostgreSQL there, so only the rows without the service):
L (``Translator.translate_tokens`` over every sentence, at each batch size tried) and naive (one sentence per call
from concurrent callers), for each compute type and beam. It builds the benchmark model itself from the vocabulary
under ``--var-dir`` (carried along: it is the only part that takes long to make) and writes ``gpu.json``.
``--device cpu`` runs the same rows on this machine, to check the script before spending GPU time.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.corpus import PseudoLanguage
from bench.model import build_bench_model
from bench.raw import Decoding, Layout, limit_row, naive_row, warm_up
from bench.suite import SENTENCE_SEED
from worker.translator import Translator

log = logging.getLogger(__name__)


def card_name(device: str) -> str:
    if device != "cuda":
        return platform.processor() or "cpu"
    try:
        answer = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return answer.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown GPU"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every row; the figures so far are rewritten to ``--out`` after each one (a lease may end mid-run)."""
    started = time.monotonic()
    model = build_bench_model(args.var_dir)
    built_s = time.monotonic() - started
    sentences = PseudoLanguage().sentences(args.sentences, seed=SENTENCE_SEED)
    results: dict[str, Any] = {
        "device": card_name(args.device),
        "sentences": args.sentences,
        "naive_sentences": args.naive_sentences,
        "length": args.length,
        "model_build_s": round(built_s, 1),
        "rows": [],
    }
    for compute_type in args.compute_types:
        for batch_size in args.batch_sizes:
            layout = Layout(args.inter_threads, args.intra_threads, batch_size)
            translator = Translator(model.ct2_dir, layout.config(args.device, compute_type))
            try:
                tokens = translator.tokenize(sentences)
                for beam in args.beams:
                    decoding = Decoding(beam, args.length)
                    warm_up(translator, tokens, decoding)
                    timings = [limit_row(translator, tokens, decoding) for _ in range(args.repeats)]
                    rates = [t.tokens_per_s for t in timings]
                    row = {
                        "row": "L",
                        "compute_type": compute_type,
                        "beam": beam,
                        "max_batch_size": batch_size,
                        "tokens_per_s": round(statistics.median(rates), 1),
                        "segments_per_s": round(statistics.median(t.segments_per_s for t in timings), 1),
                        "all_tokens_per_s": [round(r, 1) for r in rates],
                    }
                    results["rows"].append(row)
                    log.info("%s", row)
                    save(results, args.out)
            finally:
                translator.close()
        if args.naive_sentences == 0:
            continue
        naive = Translator(model.ct2_dir, Layout(args.naive_callers, 1, 1).config(args.device, compute_type))
        try:
            tokens = naive.tokenize(sentences[: args.naive_sentences])
            for beam in args.beams:
                decoding = Decoding(beam, args.length)
                warm_up(naive, tokens, decoding)
                timing = naive_row(naive, tokens, decoding, callers=args.naive_callers)
                row = {
                    "row": "naive",
                    "compute_type": compute_type,
                    "beam": beam,
                    "callers": args.naive_callers,
                    "tokens_per_s": round(timing.tokens_per_s, 1),
                    "segments_per_s": round(timing.segments_per_s, 1),
                }
                results["rows"].append(row)
                log.info("%s", row)
                save(results, args.out)
        finally:
            naive.close()
    results["duration_s"] = round(time.monotonic() - started, 1)
    return results


def save(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu.json").write_text(json.dumps(results, indent=2) + "\n")


def render(results: dict[str, Any]) -> str:
    lines = [f"device: {results['device']}; {results['sentences']} sentences x {results['length']} target tokens"]
    lines.append(f"{'row':<6} {'compute type':<13} {'beam':>4} {'batch':>6} {'tokens/s':>10} {'segments/s':>11}")
    for row in results["rows"]:
        batch = row.get("max_batch_size", "1/call")
        lines.append(
            f"{row['row']:<6} {row['compute_type']:<13} {row['beam']:>4} {batch!s:>6} "
            f"{row['tokens_per_s']:>10.0f} {row['segments_per_s']:>11.1f}"
        )
    lines.append(f"duration {results['duration_s']} s (model build {results['model_build_s']} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--compute-types", default="float16,int8_float16", type=lambda v: v.split(","))
    parser.add_argument("--beams", default="4,1", type=lambda v: [int(b) for b in v.split(",")])
    parser.add_argument("--batch-sizes", default="32,64,128", type=lambda v: [int(b) for b in v.split(",")])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--naive-sentences", type=int, default=200)
    parser.add_argument("--naive-callers", type=int, default=4)
    parser.add_argument("--inter-threads", type=int, default=1)
    parser.add_argument("--intra-threads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--var-dir", type=Path, default=Path("var/bench"))
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    results = run(args)
    save(results, args.out)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
