"""Run a train script on MXNet's parameter server: 1 scheduler, S servers, N workers.

    python launch_distributed.py --workers 2 --servers 1 -- \\
        python train_googlenet.py --checkpoints out --prefix googlenet --kvstore dist_sync
    python launch_distributed.py --hosts hosts.txt --workers 4 -- \\
        /opt/venv/bin/python train_googlenet.py --checkpoints out --prefix googlenet \\
        --kvstore dist_sync

See docs/distributed.md. Exit status: 0 when every worker finished; a failed process's
own status (128 + N when killed by signal N); 124 past --timeout; 130/143 when stopped
by SIGINT/SIGTERM; 2 for a bad option or hosts file.
"""

import sys

from pyimagesearch.commands import launch_distributed


def main(argv: list[str] | None = None) -> int:
    return launch_distributed.main(argv)


if __name__ == "__main__":
    sys.exit(main())
