"""``train_cifar.py``: the CIFAR ResNet options, and R runs of one setting in turn.

Run k (seed S+k) lives in ``<checkpoints>/seed<S+k>``. ``--resume`` continues every run
from its newest checkpoint (finished runs are skipped, unstarted ones start); the book's
``--start-epoch N`` resumes every run from its checkpoint N. A depth listed in the
config's ``RECIPES_BY_DEPTH`` (the 110-layer warm-up) gets that recipe.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pyimagesearch.commands.common import run
from pyimagesearch.commands.train import (
    build_parser,
    command_line,
    run_and_report,
    without_options,
)
from pyimagesearch.config import ConfigError, Settings, load_config
from pyimagesearch.errors import EXIT_INTERRUPTED, EXIT_TERMINATED
from pyimagesearch.nn.cifar_resnet import SHORTCUTS, VARIANTS, blocks_per_stage
from pyimagesearch.run.checkpoints import latest_checkpoint
from pyimagesearch.run.paths import seed_folder
from pyimagesearch.settings import argument_type
from pyimagesearch.settings.recipes import Recipe
from pyimagesearch.training.experiment import RunRequest


def add_cifar_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CIFAR ResNet")
    group.add_argument("--depth", type=int, default=None,
                       help="6n+2 layers: 20, 32, 44, 56, 110, 1202 in the paper "
                            "(default: the config's MODEL_PARAMS)")
    group.add_argument("--variant", choices=sorted(VARIANTS), default=None,
                       help="building block (default: the config's, 'original')")
    group.add_argument("--shortcut", choices=SHORTCUTS, default=None,
                       help="A: identity, zero-padded (the paper's on CIFAR); B: projection")
    group.add_argument("--runs", type=argument_type("--runs"), default=1,
                       help="train R runs with seeds seed..seed+R-1, each in "
                            "<checkpoints>/seed<k>")
    group.add_argument("--resume", action="store_true",
                       help="continue every run from its newest checkpoint (finished runs "
                            "are skipped, unstarted ones start from scratch)")


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The network options given on the command line (the others stay the config's)."""
    given = {"depth": args.depth, "variant": args.variant, "shortcut": args.shortcut}
    return {key: value for key, value in given.items() if value is not None}


def select_recipe(config: Settings, depth: int) -> Recipe:
    """``RECIPES_BY_DEPTH[depth]`` if the config has it (the 110-layer warm-up), else ``RECIPE``."""
    return dict(config.RECIPES_BY_DEPTH).get(depth, config.RECIPE)


def plan_runs(config: Settings, args: argparse.Namespace) -> list[RunRequest]:
    """One ``RunRequest`` per run of the study; ``--resume`` drops the finished ones."""
    if args.resume and args.start_epoch:
        raise ConfigError("give --resume or --start-epoch, not both")
    if args.resume and args.lr is not None:
        raise ConfigError("--lr needs an explicit --start-epoch (the epoch it applies from)")
    overrides = model_overrides(args)
    params = {**dict(config.MODEL_PARAMS), **overrides}
    depth = params.get("depth", 20)
    try:
        blocks_per_stage(depth)
    except ValueError as exc:
        raise ConfigError(f"--depth: {exc}") from None
    recipe = select_recipe(config, depth)
    end_epoch = args.end_epoch if args.end_epoch is not None else recipe.num_epochs
    first = args.seed if args.seed is not None else int(config.SEED)
    # The core's resume options (--override, --reset-optimizer) pass through unchanged.
    passed = {name: getattr(args, name) for name in ("override", "reset_optimizer")
              if name in RunRequest.__dataclass_fields__ and hasattr(args, name)}
    requests = []
    for seed in range(first, first + args.runs):
        folder = seed_folder(args.checkpoints, seed)
        start = args.start_epoch
        if args.resume:
            start = latest_checkpoint(folder, args.prefix) or 0
            if start >= end_epoch:
                continue
        requests.append(RunRequest(
            checkpoints=str(folder), prefix=args.prefix, start_epoch=start,
            end_epoch=args.end_epoch, lr=args.lr, cpu_contexts=args.cpu_contexts,
            gpus=args.gpus, model_params=overrides, seed=seed, recipe=recipe, **passed))
    return requests


def _single_run_argv(argv: list[str], seed: int) -> list[str]:
    """``argv`` for just the run with ``seed`` (what its resume message should show)."""
    return [*without_options(argv, ("--runs", "--seed"), flags=("--resume",)), "--seed",
            str(seed)]


def _resume_all_command(argv: list[str]) -> str:
    kept = without_options(argv, ("-s", "--start-epoch", "--lr"), flags=("--resume",))
    return command_line([*kept, "--resume"])


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    """Parse, load the config, train every run of the study in turn; stop at a failure."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(description, default_config)
    add_cifar_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(lambda: train_study(load_config(args.config), args, argv))


def train_study(config: Settings, args: argparse.Namespace, argv: list[str]) -> int:
    requests = plan_runs(config, args)
    if not requests:
        print(f"[INFO] all {args.runs} run(s) in {args.checkpoints} are finished; nothing "
              f"to do (extend them with --start-epoch N --end-epoch M)")
        return 0
    recipe = requests[0].recipe
    print(f"[INFO] {len(requests)} run(s) of {config.MODEL} "
          f"{ {**dict(config.MODEL_PARAMS), **requests[0].model_params} } "
          f"with recipe {recipe.name} ({config.source}); seeds "
          f"{', '.join(str(r.seed) for r in requests)}")
    for request in requests:
        print(f"[INFO] run seed {request.seed}: epochs {request.start_epoch}.."
              f"{(request.end_epoch or recipe.num_epochs) - 1} in {request.checkpoints}")
        code = run_and_report(config, request, _single_run_argv(argv, request.seed))
        if code != 0:
            if code in (EXIT_INTERRUPTED, EXIT_TERMINATED) or len(requests) > 1:
                print(f"[INFO] to continue every run of the study: "
                      f"{_resume_all_command(argv)}", file=sys.stderr)
            return code
    return 0
