"""The command line of every ``train_*.py`` script, and how its failures are reported.

``python train_googlenet.py --checkpoints out --prefix googlenet --start-epoch 30``:
the book's flags, plus ``--lr`` (set the rate by hand from the start epoch on) and
``--end-epoch``. Expected failures (bad config, missing records or checkpoint, a
diverged loss, a signal, another run holding the folder, a full disk) print one clear
message and exit non-zero, never a traceback; where a checkpoint exists to go on from,
the exact resume command follows.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import replace

from pyimagesearch.config import ConfigError, Settings, load_config
from pyimagesearch.data.dataset import DatasetChanged, DatasetError
from pyimagesearch.exit_codes import EXIT_DIVERGED, EXIT_ERROR
from pyimagesearch.locks import LockError
from pyimagesearch.run.checkpoints import CheckpointError
from pyimagesearch.run.logs import LogWriteError
from pyimagesearch.settings import KVSTORE_TYPES, argument_type
from pyimagesearch.training.devices import add_device_arguments
from pyimagesearch.training.experiment import RunRequest, train
from pyimagesearch.training.loop import TrainingDiverged, TrainingInterrupted, WriteFailed
from pyimagesearch.training.optimizers import StateError


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
    parser.add_argument("--config", default=default_config,
                        help=f"config module or .py path (default {default_config})")
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


def argv_overriding(argv: list[str]) -> list[str]:
    """``argv`` with ``--override`` (once)."""
    return [*without_options(argv, (), flags=("--override",)), "--override"]


def _resume_command(argv: list[str], epoch: int, lr: float | None = None) -> str:
    """The command line that was run, with ``--start-epoch`` set to ``epoch`` (and ``--lr``)."""
    kept = without_options(argv, ("-s", "--start-epoch", "--lr"))
    rate = [] if lr is None else ["--lr", f"{lr:g}"]
    return command_line([*kept, "--start-epoch", str(epoch), *rate])


ModelArguments = Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], dict]]


def run_and_report(config: Settings, request: RunRequest, argv: list[str]) -> int:
    """Train as ``request`` says; turn the expected failures into a message and exit code."""
    request = replace(request, resume_command=lambda epoch, lr: _resume_command(argv, epoch, lr))
    try:
        record = train(config, request)
    except TrainingInterrupted as exc:
        print(f"[INFO] stopped: {exc}", file=sys.stderr)
        if exc.resume_epoch is not None:
            print(f"[INFO] resume with: {_resume_command(argv, exc.resume_epoch)}",
                  file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # before the training loop watches for signals
        print("[INFO] stopped before training began; no checkpoint was written",
              file=sys.stderr)
        return 128 + signal.SIGINT
    except TrainingDiverged as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except DatasetChanged as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        if exc.resume_epoch is not None:
            print(f"[INFO] the checkpoints up to epoch {exc.resume_epoch} were trained on the "
                  f"dataset as it was; to go on with the rebuilt one: "
                  f"{_resume_command([*argv_overriding(argv)], exc.resume_epoch)}",
                  file=sys.stderr)
        return EXIT_ERROR
    except WriteFailed as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        if exc.resume_epoch is not None:
            print(f"[INFO] resume with: "
                  f"{_resume_command(argv, exc.resume_epoch)}", file=sys.stderr)
        return EXIT_ERROR
    except (ConfigError, DatasetError, CheckpointError, StateError, LockError,
            LogWriteError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
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


def train_main(argv: list[str] | None, description: str, default_config: str,
               model_arguments: ModelArguments | None = None) -> int:
    """The whole command: parse, load the config, train, report.

    ``model_arguments`` lets a script add network options (CIFAR's ``--depth``): it adds
    them to the parser and returns a function from the parsed arguments to constructor
    arguments.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(description, default_config)
    to_model_params = model_arguments(parser) if model_arguments else (lambda args: {})
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    request = RunRequest(checkpoints=args.checkpoints, prefix=args.prefix,
                         start_epoch=args.start_epoch, end_epoch=args.end_epoch, lr=args.lr,
                         cpu_contexts=args.cpu_contexts, gpus=args.gpus,
                         model_params=to_model_params(args),
                         seed=args.seed, override=args.override,
                         reset_optimizer=args.reset_optimizer, kvstore=args.kvstore)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
    return run_and_report(config, request, argv)
