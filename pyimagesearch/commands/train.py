"""``train_googlenet.py``, ``train_inception_resnet_v2.py``: train or resume one run.

The book's flags, plus ``--lr`` (the rate by hand from the start epoch on) and
``--end-epoch``. A failure prints one line; where a checkpoint exists to go on from,
the exact resume command follows.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace

from pyimagesearch.commands.common import add_config_argument, add_device_arguments, run
from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import DatasetChanged
from pyimagesearch.errors import EXIT_INTERRUPTED, ProjectError
from pyimagesearch.settings import KVSTORE_TYPES, Settings, argument_type
from pyimagesearch.training.experiment import RunRequest, train
from pyimagesearch.training.loop import TrainingInterrupted, WriteFailed


def build_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--checkpoints", required=True,
                        help="folder of the run's checkpoints and logs")
    parser.add_argument("-p", "--prefix", required=True, help="name prefix of the checkpoints")
    parser.add_argument("-s", "--start-epoch", type=argument_type("--start-epoch"), default=0,
                        help="0 trains from scratch; N resumes from checkpoint N")
    parser.add_argument("--end-epoch", type=argument_type("--end-epoch"), default=None,
                        help="train up to this epoch (default: the recipe's num_epochs)")
    parser.add_argument("--lr", type=argument_type("--lr"), default=None,
                        help="learning rate from the start epoch on, replacing the schedule "
                             "(the book's manual drop, which it makes by editing the script); "
                             "kept by later resumes")
    add_config_argument(parser, default_config)
    add_device_arguments(parser)
    parser.add_argument("--seed", type=argument_type("--seed"), default=None,
                        help="random seed of the run (default: the config's SEED)")
    parser.add_argument("--override", action="store_true",
                        help="resume even though the config, dataset or recipe differ from "
                             "the checkpoint's (the differences are logged)")
    parser.add_argument("--kvstore", choices=KVSTORE_TYPES, default=None,
                        help="how gradients are aggregated (default: the config's KVSTORE, "
                             "else 'device'); dist_* need launch_distributed.py")
    parser.add_argument("--reset-optimizer", action="store_true",
                        help="resume without the checkpoint's optimizer state (momentum "
                             "starts from zero; the schedule continues)")
    return parser


def without_options(argv: list[str], with_value: tuple[str, ...],
                    flags: tuple[str, ...] = ()) -> list[str]:
    """``argv`` minus the options ``with_value`` (and their values) and the ``flags``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in with_value:
            skip = True
        elif not (arg.startswith(tuple(f"{name}=" for name in with_value)) or arg in flags):
            kept.append(arg)
    return kept


def command_line(argv: list[str]) -> str:
    """The shell command that runs this script with ``argv``."""
    return shlex.join([sys.executable, sys.argv[0], *argv])


def resume_command(argv: list[str], epoch: int, lr: float | None = None,
                   override: bool = False) -> str:
    """The command line that was run, with ``--start-epoch`` set to ``epoch`` (and ``--lr``,
    ``--override``)."""
    kept = without_options(argv, ("-s", "--start-epoch", "--lr"),
                           flags=("--override",) if override else ())
    rate = [] if lr is None else ["--lr", f"{lr:g}"]
    return command_line([*kept, *(["--override"] if override else []), "--start-epoch",
                         str(epoch), *rate])


def _resume_notes(argv: list[str]) -> Callable[[ProjectError], list[str]]:
    def notes(exc: ProjectError) -> list[str]:
        epoch = getattr(exc, "resume_epoch", None)
        if epoch is None:
            return []
        if isinstance(exc, DatasetChanged):
            return [f"[INFO] the checkpoints up to epoch {epoch} were trained on the dataset "
                    f"as it was; to go on with the rebuilt one: "
                    f"{resume_command(argv, epoch, override=True)}"]
        if isinstance(exc, (TrainingInterrupted, WriteFailed)):
            return [f"[INFO] resume with: {resume_command(argv, epoch)}"]
        return []
    return notes


def run_and_report(config: Settings, request: RunRequest, argv: list[str]) -> int:
    """Train as ``request`` says; a failure is one line (and the resume command)."""
    request = replace(request, resume_command=lambda epoch, lr: resume_command(argv, epoch, lr))

    def body() -> int:
        try:
            record = train(config, request)
        except KeyboardInterrupt:  # before the training loop watches for signals
            print("[INFO] stopped before training began; no checkpoint was written",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        val = record.get("val")
        if val is None:  # a distributed run's other workers do not validate
            print(f"[INFO] finished epoch {record.get('epoch')} (worker 0 validates and saves "
                  f"checkpoints in {request.checkpoints})")
            return 0
        print(f"[INFO] finished epoch {record.get('epoch')}: validation rank-1 "
              f"{val.get('accuracy', float('nan')):.4f}, rank-5 "
              f"{val.get('top_k_accuracy_5', float('nan')):.4f}; checkpoints in "
              f"{request.checkpoints}")
        return 0

    return run(body, notes=_resume_notes(argv))


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(description, default_config).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = RunRequest(checkpoints=args.checkpoints, prefix=args.prefix,
                         start_epoch=args.start_epoch, end_epoch=args.end_epoch, lr=args.lr,
                         cpu_contexts=args.cpu_contexts, gpus=args.gpus, seed=args.seed,
                         override=args.override, reset_optimizer=args.reset_optimizer,
                         kvstore=args.kvstore)
    return run(lambda: run_and_report(load_config(args.config), request, argv))
