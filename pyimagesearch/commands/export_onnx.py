"""``export_onnx.py``: a checkpoint as an ONNX file that is checked to compute what MXNet does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyimagesearch.commands.common import add_recorded_config_arguments, add_run_arguments, run
from pyimagesearch.export import DEFAULT_PARITY_IMAGES, DEFAULT_TOLERANCE, RUNTIMES, ExportError
from pyimagesearch.inference.source import describe_checkpoint
from pyimagesearch.settings import argument_type


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a checkpoint to ONNX and check that it computes what MXNet does.")
    add_run_arguments(parser, epoch=True)
    add_recorded_config_arguments(parser)
    parser.add_argument("-o", "--output", default=None,
                        help="the .onnx file (default: DIR/NAME-%%04d.onnx)")
    parser.add_argument("--tolerance", type=argument_type("--tolerance"), default=DEFAULT_TOLERANCE,
                        help="largest allowed |ONNX - MXNet| on the outputs (default 1e-4)")
    parser.add_argument("--parity-images", type=argument_type("--parity-images"),
                        default=DEFAULT_PARITY_IMAGES,
                        help="records the check runs (default 8)")
    parser.add_argument("--parity-split", choices=("test", "val"), default="test",
                        help="records the check reads (default test)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="ONNX runtime of the check: onnxruntime if installed (auto), or "
                             "onnx's reference evaluator")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: export(args))


def export(args: argparse.Namespace) -> int:
    try:
        # onnx may be missing from a hand-made environment: say how to get it
        from pyimagesearch.export.onnx_export import default_output, export_checkpoint
    except ImportError as exc:
        raise ExportError(f"exporting needs the onnx packages ({exc}); install them with "
                          f"pip install -r requirements.txt (onnx, protobuf), and "
                          f"onnxruntime with pip install --no-deps -r "
                          f"requirements-export.txt") from None
    source = describe_checkpoint(args.checkpoints, args.prefix, args.epoch, args.config,
                                 args.override)
    for note in source.notes:
        print(f"[WARNING] {note}", file=sys.stderr)
    output = Path(args.output) if args.output else default_output(source)
    print(f"[INFO] exporting {source.model} {source.prefix} epoch {source.epoch}: "
          f"{source.preprocessing.describe()}; {len(source.classes)} classes "
          f"({source.label_order} order, from {source.classes_source})")
    parity = export_checkpoint(source, output, args.tolerance, args.parity_images,
                               args.parity_split, args.runtime)
    print(f"[INFO] parity: {parity.describe(args.tolerance)}")
    print(f"[INFO] wrote {output} ({output.stat().st_size / 2**20:.1f} MiB)")
    return 0
