"""``launch_distributed.py``: a train command on MXNet's parameter server, here or over ssh."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from pyimagesearch.commands.common import run, setup_logging
from pyimagesearch.distributed import launch, plan_job, read_hosts
from pyimagesearch.distributed.plan import DEFAULT_GRACE, DEFAULT_REMOTE_PORT, DEFAULT_SSH
from pyimagesearch.distributed.preflight import check_kvstore


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch_distributed.py",
        usage="%(prog)s --workers N [options] -- TRAIN COMMAND ...",
        description="Run a training command on MXNet's parameter server: 1 scheduler, "
                    "S servers and N workers, here or on the machines of a hosts file.",
        epilog="example: %(prog)s --workers 2 --servers 1 -- python train_googlenet.py "
               "--checkpoints out --prefix googlenet --kvstore dist_sync")
    parser.add_argument("-n", "--workers", type=int, required=True,
                        help="number of worker processes (each runs the train command)")
    parser.add_argument("-s", "--servers", type=int, default=None,
                        help="number of server processes (default: 1 here, one per host "
                             "with --hosts)")
    parser.add_argument("-H", "--hosts", default=None,
                        help="hosts file: one 'TARGET [slots=N] [address=IP]' a line, "
                             "'#' comments; the scheduler runs on the first host")
    parser.add_argument("-p", "--port", type=int, default=None,
                        help="scheduler port (default: a free one here; "
                             f"{DEFAULT_REMOTE_PORT} with --hosts)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop the whole job after this many seconds (exit 124)")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE,
                        help="seconds between SIGTERM and SIGKILL when stopping "
                             "(default %(default)g)")
    parser.add_argument("--ssh-command", default=DEFAULT_SSH,
                        help="how to run a command on a host: it is called as "
                             "SSH_COMMAND TARGET 'REMOTE COMMAND' (default %(default)r); "
                             "it must keep stdin open (no -n)")
    parser.add_argument("--workdir", default=None,
                        help="folder the processes run in (default: the current folder; "
                             "with --hosts it must exist on every host)")
    parser.add_argument("--env", type=_key_value, action="extend", nargs="+", default=[],
                        metavar="KEY=VALUE", help="extra environment variables of every "
                                                  "process (e.g. PS_VERBOSE=1)")
    parser.add_argument("--server-command", default=None,
                        help="program of the scheduler and servers (default: "
                             "PYTHON -c 'import mxnet' with the train command's PYTHON)")
    parser.add_argument("--tail", type=int, default=30,
                        help="lines of a failed process's output to repeat (default 30)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the processes and their commands, start nothing")
    return parser


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split the launcher's arguments from the train command at the first ``--``."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def main(argv: Sequence[str] | None = None) -> int:
    """See ``launch_distributed.py`` for the exit statuses."""
    own, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(own)
    if not command:
        parser.error("no train command: put it after --")
    setup_logging("[launcher] %(message)s")
    return run(lambda: launch_job(args, command), prefix="[launcher] error: ")


def launch_job(args: argparse.Namespace, command: list[str]) -> int:
    hosts = read_hosts(args.hosts) if args.hosts else None
    options = dict(hosts=hosts, port=args.port, env=dict(args.env), workdir=args.workdir,
                   ssh_command=args.ssh_command, grace=args.grace,
                   server_command=shlex.split(args.server_command)
                   if args.server_command else None)
    if args.dry_run:
        check_kvstore(command, args.workers, args.workdir)
        for spec in plan_job(command, args.workers, args.servers, **options):
            where = f" on {spec.host.target}" if spec.host else ""
            print(f"[{spec.label}]{where}: {spec.describe()}")
        return 0
    return launch(command, args.workers, args.servers, timeout=args.timeout,
                  tail_lines=args.tail, **options).returncode
