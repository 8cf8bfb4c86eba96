"""Several processes and machines on MXNet's parameter server (``dist_sync`` and friends).

``launcher`` starts a scheduler, servers and workers for a train command, here or over
ssh, and supervises them; see ``docs/distributed.md``.
"""

from pyimagesearch.distributed.launcher import (
    Host,
    LaunchError,
    LaunchResult,
    ProcessResult,
    launch,
    parse_hosts,
    plan_job,
    read_hosts,
)

__all__ = ["Host", "LaunchError", "LaunchResult", "ProcessResult", "launch", "parse_hosts",
           "plan_job", "read_hosts"]
