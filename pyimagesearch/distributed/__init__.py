"""Several processes and machines on MXNet's parameter server (``dist_sync`` and friends).

``plan`` says what runs where, ``preflight`` what must hold before anything starts, and
``supervise`` starts the job and watches it; see ``docs/distributed.md``.
"""

from pyimagesearch.distributed.plan import Host, LaunchError, parse_hosts, plan_job, read_hosts
from pyimagesearch.distributed.supervise import LaunchResult, ProcessResult, launch

__all__ = ["Host", "LaunchError", "LaunchResult", "ProcessResult", "launch", "parse_hosts",
           "plan_job", "read_hosts"]
