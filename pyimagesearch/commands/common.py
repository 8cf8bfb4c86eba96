"""What the commands share: their common arguments, logging, and the one place where an
expected failure (:class:`~pyimagesearch.errors.ProjectError`) becomes its line on stderr
and its exit status."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pyimagesearch.errors import EXIT_INTERRUPTED, ProjectError
from pyimagesearch.settings import argument_type


def run(body: Callable[[], int], *, prefix: str = "[ERROR] ",
        interrupted: str | None = None,
        notes: Callable[[ProjectError], list[str]] | None = None) -> int:
    """``body()``'s exit status; a :class:`ProjectError` prints ``prefix`` + its message
    (or its own ``label``) and the ``notes`` for it, and ends with its ``exit_status``.
    ``interrupted``: the line a Ctrl-C prints (exit 130); without it Ctrl-C propagates."""
    try:
        return body()
    except ProjectError as exc:
        label = prefix if exc.label is None else exc.label
        print(f"{label}{exc}", file=sys.stderr)
        for line in notes(exc) if notes else ():
            print(line, file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED


def setup_logging(fmt: str = "%(levelname)s %(name)s: %(message)s", **options: str) -> None:
    logging.basicConfig(level=logging.INFO, format=fmt, **options)


def add_config_argument(parser: argparse.ArgumentParser, default: str | None,
                        help: str | None = None) -> None:
    parser.add_argument("--config", default=default,
                        help=help or f"config module or .py path (default {default})")


def add_run_arguments(parser: argparse.ArgumentParser, epoch: bool | None = None,
                      required: bool = True) -> None:
    """``--checkpoints`` and ``--prefix``, and ``--epoch`` when ``epoch`` says (True:
    required; False: optional)."""
    parser.add_argument("-c", "--checkpoints", required=required,
                        help="folder of the checkpoints")
    parser.add_argument("-p", "--prefix", required=required,
                        help="name prefix of the checkpoints")
    if epoch is not None:
        parser.add_argument("-e", "--epoch", required=epoch and required,
                            type=argument_type("--epoch"),
                            help="checkpoint epoch, or 'last' for the newest that verifies")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--gpus`` and ``--cpu-contexts``: the devices of every command that runs a network."""
    parser.add_argument("--gpus", type=argument_type("--gpus"), default=None, metavar="0,2",
                        help="these GPUs (by number) instead of the config's first NUM_DEVICES")
    parser.add_argument("--cpu-contexts", type=argument_type("--cpu-contexts"), default=1,
                        help="without GPUs, split each batch over this many CPU contexts")


def add_recorded_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` (default: the one the run recorded) and ``--override``: the commands that
    use a trained model take the dataset the run trained on unless told otherwise."""
    parser.add_argument("--config", default=None,
                        help="config module or .py path (default: the one the run recorded)")
    parser.add_argument("--override", action="store_true",
                        help="use the config's dataset even though its label order, classes, "
                             "stored size or mean differ from the checkpoint's (printed)")
