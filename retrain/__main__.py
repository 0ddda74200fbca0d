"""``retrain`` command line: one function per subcommand.

::

    retrain demo-model --out var/demo-model [--preset demo|test]
    retrain train --corpus data.tsv --pair en-fr --out var/models/en-fr [--preset demo] [--max-steps N]
    retrain run --pair en-fr [--force] [--start auto|champion|base|scratch] [--max-steps N] [--max-time-s S]
    retrain import --pair en-fr --model-dir DIR [--champion]

``run`` and ``import`` read :class:`retrain.settings.RetrainSettings` (``BT_RETRAIN_*``, ``BT_STORE_URL``,
``MLFLOW_TRACKING_URI``) and print a JSON summary on stdout. Exit codes: 0 done (for ``run``: promoted, not
promoted, or nothing to do; the summary's ``outcome`` says which), 1 failed (registry, store, data or training
error; an MLflow run that was started is marked FAILED), 2 usage or configuration error.

To add a subcommand, write ``add_<name>_parser(subparsers)`` that registers its arguments and a handler
``<name>(args) -> int``, and list the former in :data:`SUBCOMMANDS`. Heavy imports (torch, transformers) happen
inside the handlers, so ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from jobs.errors import BatchTranslateError

if TYPE_CHECKING:
    from retrain.settings import RetrainSettings

log = logging.getLogger("retrain")

#: Exit codes.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

#: Presets accepted by ``--preset`` (kept here so that ``--help`` needs no torch import).
PRESETS = ("test", "demo")


def parse_pair(text: str) -> tuple[str, str]:
    """``"en-fr"`` → ``("en", "fr")``; ``"en-pt-BR"`` → ``("en", "pt-BR")`` (the one split where both sides are
    language codes: :func:`jobs.parallel_corpus.split_pair`, imported here to keep ``--help`` instant)."""
    from jobs.parallel_corpus import split_pair

    try:
        return split_pair(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a language pair like 'en-fr' (source and target language codes joined by '-')"
        ) from None


def _add_pair_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pair", type=parse_pair, required=True, help="language pair, e.g. en-fr")


def _add_common_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=PRESETS, default="demo", help="model size and training budget")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default: %(default)s; 2 stalled on a loaded 2-core box)"
    )
    parser.add_argument("--max-time-s", type=float, help="stop training after this many seconds")
    parser.add_argument(
        "--checkpoint-dir", type=Path, help="keep the Hugging Face checkpoint here (to fine-tune from later)"
    )


def _report(out_dir: Path) -> None:
    """User-facing summary on stdout: where the model is and how it scored."""
    from jobs.model_dir import ModelInfo

    info = ModelInfo.read(out_dir)
    summary: dict[str, object] = {
        "model_dir": str(out_dir),
        "name": info.name,
        "version": info.version,
        "pair": f"{info.source_lang}-{info.target_lang}",
        **{k: info.extra[k] for k in ("chrf", "bleu", "exact_match", "steps", "train_seconds") if k in info.extra},
    }
    print(json.dumps(summary, indent=2))


# --- demo-model -------------------------------------------------------------------------------------------------


def add_demo_model_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo-model",
        help="build the English→French number-phrase demo model (cached)",
        description="Generate the demo corpus, train, convert to CTranslate2 and evaluate; "
        "reuse the directory if it already holds the same build.",
    )
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    _add_common_training_options(parser)
    parser.add_argument("--force", action="store_true", help="rebuild even if --out already holds this model")
    parser.set_defaults(handler=demo_model)


def demo_model(args: argparse.Namespace) -> int:
    from retrain.demo import build_demo_model

    out_dir = build_demo_model(
        args.out,
        preset=args.preset,
        seed=args.seed,
        threads=args.threads,
        max_time_s=args.max_time_s,
        checkpoint_dir=args.checkpoint_dir,
        force=args.force,
    )
    _report(out_dir)
    return EXIT_OK


# --- train ------------------------------------------------------------------------------------------------------


def add_train_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a parallel corpus",
        description="Hash-split the corpus, train on the train split, convert to CTranslate2 and score on the "
        "test split.",
    )
    parser.add_argument(
        "--corpus", type=Path, action="append", required=True, help="source<TAB>target file (repeatable)"
    )
    _add_pair_option(parser)
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--name", help="model name (default: the --out directory name)")
    parser.add_argument("--version", default="local", help="model version (default: %(default)s)")
    parser.add_argument("--max-steps", type=int, help="stop training after this many steps")
    parser.add_argument("--init-checkpoint", type=Path, help="fine-tune from this Hugging Face checkpoint")
    _add_common_training_options(parser)
    parser.set_defaults(handler=train)


def train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from retrain.build import build_model, recipe
    from retrain.corpus import read_corpus

    chosen = recipe(args.preset)
    train_config = replace(chosen.train, seed=args.seed, threads=args.threads)
    if args.max_steps is not None:
        train_config = replace(train_config, max_steps=args.max_steps)
    if args.max_time_s is not None:
        train_config = replace(train_config, max_time_s=args.max_time_s)
    chosen = replace(chosen, train=train_config)
    source_lang, target_lang = args.pair
    out_dir = build_model(
        read_corpus(args.corpus),
        args.out,
        chosen,
        name=args.name or args.out.resolve().name,
        source_lang=source_lang,
        target_lang=target_lang,
        version=args.version,
        checkpoint_dir=args.checkpoint_dir,
        init_checkpoint=args.init_checkpoint,
        extra={"preset": args.preset, "seed": args.seed},
    )
    _report(out_dir)
    return EXIT_OK


# --- run --------------------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace, **overrides: object) -> RetrainSettings:
    """The environment's settings with the command line's overrides (unset options override nothing)."""
    from retrain.settings import RetrainSettings

    settings = RetrainSettings()
    changes = {key: value for key, value in overrides.items() if value is not None}
    return RetrainSettings.model_validate(settings.model_dump() | changes) if changes else settings


def add_run_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="retrain a pair when enough new data arrived; promote the candidate if it beats the champion",
        description="Read the pair's corpus (store uploads and <data_dir>/<pair>/ files), skip if too little is new "
        "since the champion's data, else train, convert to CTranslate2, evaluate candidate and champion on the test "
        "split, register the candidate in MLflow and move the champion alias if it passes the gate. The CronJob's "
        "command. Settings: BT_RETRAIN_* (see retrain/settings.py).",
    )
    _add_pair_option(parser)
    parser.add_argument("--force", action="store_true", help="train even if too little new data arrived")
    parser.add_argument(
        "--start",
        choices=("auto", "champion", "base", "scratch"),
        default="auto",
        help="start from the champion's checkpoint, the base model, or scratch (default: the first that exists)",
    )
    parser.add_argument("--max-steps", type=int, help="stop training after this many steps (BT_RETRAIN_MAX_STEPS)")
    parser.add_argument("--max-time-s", type=float, help="stop training after this many seconds")
    parser.add_argument("--preset", choices=PRESETS, help="recipe for training from scratch (BT_RETRAIN_PRESET)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from retrain.pipeline import run as run_pipeline

    settings = _settings(args, max_time_s=args.max_time_s, preset=args.preset)
    pair = "-".join(args.pair)
    result = run_pipeline(settings, pair, force=args.force, start=args.start, max_steps=args.max_steps)
    print(json.dumps(result.to_dict(), indent=2))
    return EXIT_OK


# --- import -----------------------------------------------------------------------------------------------------


def add_import_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="register an existing model directory (CTranslate2, or a Hugging Face Marian checkpoint) for a pair",
        description="Register a CTranslate2 model directory, or convert and register a Hugging Face Marian "
        "checkpoint (e.g. OPUS-MT), as a new version of the pair's model; --champion also points the alias at it.",
    )
    _add_pair_option(parser)
    parser.add_argument("--model-dir", type=Path, required=True, help="the model directory to import")
    parser.add_argument("--champion", action="store_true", help="make the imported version the champion")
    parser.add_argument(
        "--quantization", default="int8", help="weight type when converting a checkpoint (default: %(default)s)"
    )
    parser.set_defaults(handler=import_)


def import_(args: argparse.Namespace) -> int:
    from retrain.importer import import_model

    result = import_model(
        _settings(args),
        "-".join(args.pair),
        args.model_dir,
        make_champion=args.champion,
        quantization=None if args.quantization == "float32" else args.quantization,
    )
    print(json.dumps(result.to_dict(), indent=2))
    return EXIT_OK


#: Subcommand registrations, in ``--help`` order.
SUBCOMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    add_demo_model_parser,
    add_train_parser,
    add_run_parser,
    add_import_parser,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retrain", description="Continuous training for batch-translate.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.handler(args))
    except ValidationError as exc:
        print(f"retrain {args.command}: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (BatchTranslateError, ValueError, OSError) as exc:
        log.debug("command failed", exc_info=True)
        print(f"retrain {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
