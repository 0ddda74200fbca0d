"""``python -m bench`` (``make bench``): the end-to-end benchmark of issue 6; ``--quick`` for a smoke run.

Prints the table and writes the same figures as JSON to ``bench/results/latest.json`` (see :mod:`bench.report`).
Needs RabbitMQ and PostgreSQL running (``make services``); builds its model once under ``var/bench``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from bench import report
from bench.stack import REPO, StackError
from bench.suite import Plan, Suite


def _key_values(items: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("BT_WORKER_"):
            raise SystemExit(f"--worker-env takes BT_WORKER_<NAME>=<value>, not {item!r}")
        pairs[key] = value
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every row (~2 min)")
    parser.add_argument("--sentences", type=int, help="sentences every row translates")
    parser.add_argument("--repeats", type=int, help="timed repeats of each row")
    parser.add_argument("--hf-repeats", type=int, help="timed repeats of the (slow) HF row")
    parser.add_argument("--hf-sentences", type=int, help="how many of the sentences the HF row translates")
    parser.add_argument("--beams", help="comma-separated beam sizes (default 4,1)")
    parser.add_argument("--store", choices=("postgresql", "sqlite"), help="job store of the service")
    parser.add_argument("--no-sanity", action="store_true", help="skip the demo-model sanity row")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="BT_WORKER_X=V", help="extra worker setting"
    )
    parser.add_argument("--var-dir", type=Path, default=REPO / "var" / "bench", help="model cache and logs")
    parser.add_argument("--output", type=Path, default=report.DEFAULT_RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("jobs", "retrain", "worker", "httpx", "transformers", "pika", "celery", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    plan = Plan.quick() if args.quick else Plan.full()
    changes: dict[str, object] = {}
    for name in ("sentences", "repeats", "hf_repeats", "hf_sentences", "store"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.beams:
        changes["beams"] = tuple(int(b) for b in args.beams.split(","))
    if args.no_sanity:
        changes["sanity"] = False
    if args.worker_env:
        changes["worker_env"] = _key_values(args.worker_env)
    plan = replace(plan, **changes)  # type: ignore[arg-type]

    try:
        results = Suite(plan, args.var_dir).run()
    except StackError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    results["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results["targets"] = report.targets(results)
    path = report.write(results, args.output)
    print(report.render(results))
    print(f"\nfigures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
