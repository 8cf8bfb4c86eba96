"""The parameter-server launcher: plans, a real loopback cluster, failures, signals, ssh.

Every job runs with a unique token in its environment, inherited by every process it
starts (ssh shim and remote wrapper included), so a test can look in /proc for anything
that outlived the launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import DEADLINE, LineReader

import train_googlenet
from pyimagesearch.commands.launch_distributed import main as launch_main
from pyimagesearch.distributed import Host, LaunchError, launch, parse_hosts, plan_job
from pyimagesearch.distributed.plan import free_port, place_workers
from pyimagesearch.distributed.preflight import check_scheduler_port

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER = [sys.executable, str(REPO_ROOT / "tests" / "dist_worker_script.py")]
TOKEN_VARIABLE = "LAUNCHER_TEST_TOKEN"
# A stand-in for ssh: ``fake_ssh.py [options] TARGET COMMAND`` logs TARGET and the role
# COMMAND exports, and runs COMMAND here in a new session, so that, as on a real remote
# host, killing the launcher's ssh process does not reach it: only closing its stdin does.
FAKE_SSH = textwrap.dedent("""\
    import os, re, subprocess, sys
    target, command = sys.argv[-2], sys.argv[-1]
    role = re.search(r"export DMLC_ROLE=(\\w+)", command).group(1)
    with open(os.environ["FAKE_SSH_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{target} {role}\\n")
    code = subprocess.call(["sh", "-c", command], start_new_session=True)
    sys.exit(code if code >= 0 else 128 - code)
    """)
# A worker or server that needs no MXNet: prints "ready" (and, with SLEEPER_READY_DIR set,
# leaves a file there), then waits. ``--ignore-term`` ignores SIGTERM; ``--stubborn``
# reports SIGINT and carries on.
SLEEPER = textwrap.dedent("""\
    import os, signal, sys, time
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--stubborn" in sys.argv:
        signal.signal(signal.SIGINT, lambda n, f: print("got SIGINT", flush=True))
    print("ready", flush=True)
    if os.environ.get("SLEEPER_READY_DIR"):
        open(os.path.join(os.environ["SLEEPER_READY_DIR"], str(os.getpid())), "w").close()
    time.sleep(3600)
    """)


def job_processes(token: str) -> list[int]:
    """Pids of live processes (other than this one) whose environment holds ``token``."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def assert_no_strays(token: str, seconds: float = 60.0) -> None:
    """No process of the job is left once the launcher returned (dying ones get ``seconds``)."""
    deadline = time.monotonic() + seconds
    while (left := job_processes(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
                for pid in left if Path(f"/proc/{pid}").exists()]
    assert not left, f"processes outlived the launcher: {commands}"


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch):
    """A job token in this process's environment; kills what a failing test left behind."""
    value = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_VARIABLE, value)
    yield value
    for pid in job_processes(value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """(ssh command, log of the targets it was asked to run on)."""
    script = tmp_path / "fake_ssh.py"
    script.write_text(FAKE_SSH, encoding="utf-8")
    log = tmp_path / "fake_ssh.log"
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return f"{sys.executable} {script} -o BatchMode=yes", log


def read_runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(folder.glob("worker-*.json"))]


def assert_trained_in_sync(runs: list[dict]) -> None:
    assert sorted(run["rank"] for run in runs) == [0, 1]
    first, second = runs
    assert first["params"].keys() == second["params"].keys()
    for name, values in first["params"].items():
        # the same summed gradient applied to the same weights: bit-identical
        assert values == second["params"][name], name
    for run in runs:
        assert run["losses"][-1] < 0.5 * run["losses"][0], run["losses"]


# ----------------------------------------------------------------------------------------
# Plans and hosts files (no processes)
# ----------------------------------------------------------------------------------------

def test_hosts_file_lines_comments_slots_and_addresses():
    hosts = parse_hosts(textwrap.dedent("""\
        # the cluster
        gpu-a slots=2        # two workers here
        me@gpu-b address=10.0.0.2

        10.0.0.3 slots=1 address=10.0.0.3
        """))
    assert hosts == [Host("gpu-a", 2), Host("me@gpu-b", 1, "10.0.0.2"),
                     Host("10.0.0.3", 1, "10.0.0.3")]
    for bad, says in (("gpu-a slots=0", "slots must be"), ("gpu-a cores=2", "slots=N"),
                      ("# nothing\n", "names no host")):
        with pytest.raises(LaunchError, match=says):
            parse_hosts(bad)


def test_workers_go_one_per_host_in_turn_within_their_slots():
    a, b = Host("a", 2, "10.0.0.1"), Host("b", 1, "10.0.0.2")
    assert place_workers([a, b], 3) == [a, b, a]
    with pytest.raises(LaunchError, match="4 workers do not fit .* 3 slots"):
        place_workers([a, b], 4)


def test_local_plan_sets_the_dmlc_variables_on_loopback():
    specs = plan_job(["python", "train.py", "--kvstore", "dist_sync"], workers=2, servers=1,
                     port=9500, env={"PS_VERBOSE": "1"})
    assert [s.label for s in specs] == ["scheduler", "server 0", "worker 0", "worker 1"]
    for spec in specs:
        assert spec.host is None and spec.argv == spec.command
        assert spec.env["DMLC_PS_ROOT_URI"] == "127.0.0.1"
        assert spec.env["DMLC_PS_ROOT_PORT"] == "9500"
        assert spec.env["DMLC_NUM_SERVER"] == "1" and spec.env["DMLC_NUM_WORKER"] == "2"
        assert spec.env["DMLC_ROLE"] == spec.role and spec.env["PS_VERBOSE"] == "1"
        assert "DMLC_RANK" not in spec.env  # ps-lite learns its id only when it is unset
    assert specs[0].command == ("python", "-c", "import mxnet")
    assert specs[2].command == ("python", "train.py", "--kvstore", "dist_sync")
    assert [s.env.get("PORT") for s in specs] == [None, "9501", "9502", "9503"]
    with pytest.raises(LaunchError, match="DMLC variables"):
        plan_job(["python", "t.py"], workers=1, env={"DMLC_ROLE": "worker"})


def test_hosts_plan_puts_the_scheduler_on_the_first_host_and_spreads_the_rest():
    hosts = [Host("a", 2, "10.0.0.1"), Host("me@b", 1, "10.0.0.2")]
    specs = plan_job(["/opt/venv/bin/python", "train.py"], workers=3, hosts=hosts,
                     workdir="/srv/run dir", ssh_command="ssh -p 2222", env={"A": "x y"})
    where = {s.label: (s.host.target, s.env.get("DMLC_NODE_HOST")) for s in specs}
    assert where == {"scheduler": ("a", None), "server 0": ("a", "10.0.0.1"),
                     "server 1": ("me@b", "10.0.0.2"), "worker 0": ("a", "10.0.0.1"),
                     "worker 1": ("me@b", "10.0.0.2"), "worker 2": ("a", "10.0.0.1")}
    scheduler, worker = specs[0], specs[3]
    assert scheduler.env["DMLC_PS_ROOT_URI"] == "10.0.0.1"
    assert scheduler.env["DMLC_PS_ROOT_PORT"] == "9091"
    assert scheduler.command == ("/opt/venv/bin/python", "-c", "import mxnet")
    assert worker.argv[:4] == ("ssh", "-p", "2222", "a")
    exec_, sh, dash_c, script = shlex.split(worker.argv[4])  # as the login shell reads it
    assert (exec_, sh, dash_c) == ("exec", "bash", "-c")
    for part in ("cd '/srv/run dir'", "export DMLC_ROLE=worker", "export A='x y'",
                 "/opt/venv/bin/python train.py &"):
        assert part in script, part


def test_dry_run_prints_the_plan_and_usage_errors_exit_2(capsys: pytest.CaptureFixture):
    assert launch_main(["--workers", "2", "--port", "9600", "--dry-run", "--",
                 "python", "train.py"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[scheduler]: DMLC_PS_ROOT_URI=127.0.0.1 DMLC_PS_ROOT_PORT=9600")
    assert out[-1].endswith("DMLC_ROLE=worker DMLC_NODE_HOST=127.0.0.1 PORT=9603 "
                            "python train.py")
    with pytest.raises(SystemExit) as exit_info:
        launch_main(["--workers", "2"])
    assert exit_info.value.code == 2
    assert "no train command" in capsys.readouterr().err
    assert launch_main(["--workers", "1", "--hosts", "/nonexistent/hosts", "--", "python"]) == 2
    assert "cannot read the hosts file" in capsys.readouterr().err


def test_a_train_command_without_a_dist_kvstore_is_refused_before_anything_starts(
        tmp_path, token, capsys):
    train = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--checkpoints",
             str(tmp_path / "run"), "--prefix", "net"]
    local, dist = tmp_path / "local.py", tmp_path / "dist.py"
    local.write_text("KVSTORE = 'device'\n")
    dist.write_text("KVSTORE = 'dist_sync'\n")
    alone = ("each of the 2 workers would train a model of its own, all of them into one "
             "checkpoint folder")
    refused = [
        ([*train, "--kvstore", "device"], "the train command has --kvstore device"),
        ([*train, "--config", str(local)],
         f"{local}: KVSTORE = 'device' and the train command has no --kvstore"),
    ]
    for command, says in refused:
        assert launch_main(["--workers", "2", "--timeout", "60", "--", *command]) == 2
        err = capsys.readouterr().err
        assert err.startswith("[launcher] error: ") and err.count("\n") == 1, err
        assert says in err and alone in err
    assert not (tmp_path / "run").exists()
    assert_no_strays(token)
    # --dry-run reads the config's validated KVSTORE too.
    assert launch_main(["--workers", "2", "--dry-run", "--", *train, "--config", str(local)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{local}: KVSTORE = 'device'" in err and alone in err
    # A dist_* kvstore on the command line or in the config passes (--dry-run: no processes).
    for command in ([*train, "--kvstore=dist_async"], [*train, "--config", str(dist)]):
        assert launch_main(["--workers", "2", "--dry-run", "--", *command]) == 0
    # So do a train command with neither (its workers judge: see the next tests) and a
    # program that is none of the train scripts (the launcher cannot know).
    for command in (train, [*WORKER, str(tmp_path)]):
        assert launch_main(["--workers", "2", "--dry-run", "--", *command]) == 0


WORKER_REFUSAL = ("but this process is a worker of a parameter-server job (DMLC_ROLE=worker): "
                  "each worker would train a model of its own, all of them into one "
                  "checkpoint folder; add --kvstore dist_sync to the train command")


def test_a_worker_with_a_local_kvstore_refuses_at_once(tiny_config, tmp_path, monkeypatch,
                                                       capsys):
    # Without DMLC_ROLE this command trains; as a launched worker it must not start.
    train = [str(REPO_ROOT / "train_googlenet.py"), "--config", tiny_config, "--checkpoints",
             str(tmp_path / "run"), "--prefix", "net", "--end-epoch", "1"]
    worker = subprocess.run([sys.executable, *train], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "DMLC_ROLE": "worker"})
    assert (worker.returncode, worker.stdout) == (2, ""), worker.stderr
    assert worker.stderr == f"[ERROR] {tiny_config}: KVSTORE = 'device', {WORKER_REFUSAL}\n"
    # The command line's --kvstore is named when it chose the kvstore.
    monkeypatch.setenv("DMLC_ROLE", "worker")
    assert train_googlenet.main([*train[1:], "--kvstore", "local"]) == 2
    assert capsys.readouterr().err == f"[ERROR] --kvstore local, {WORKER_REFUSAL}\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_train_command_with_neither_is_stopped_by_its_refusing_workers(tmp_path, token):
    # No --kvstore, no --config: the launcher starts the job; the workers see the default
    # config's KVSTORE = 'device' and refuse, which stops the job with their line.
    train = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--checkpoints",
             str(tmp_path / "run"), "--prefix", "net"]
    result = launch(train, workers=2, timeout=DEADLINE, grace=3, echo=False)
    assert (result.outcome, result.returncode) == ("failed", 2), result.message
    assert result.failed.startswith("worker") and "exit status 2" in result.message
    config = REPO_ROOT / "config" / "imagenet_googlenet_config.py"
    assert f"    [ERROR] {config}: KVSTORE = 'device', {WORKER_REFUSAL}" in result.message
    assert not (tmp_path / "run").exists()
    assert_no_strays(token)


def test_a_busy_scheduler_port_is_refused_in_one_line(token, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert launch_main(["--workers", "1", "--port", str(port), "--", sys.executable, "-c",
                     "pass"]) == 2
        # On another host the port is tried from here: something answers there.
        with pytest.raises(LaunchError, match=f"port {port} on 127.0.0.1 is already in use "
                                              f"\\(something accepts connections there\\)"):
            check_scheduler_port("127.0.0.1", port, local=False)
    assert capsys.readouterr().err == (
        f"[launcher] error: port {port} on 127.0.0.1 is already in use (Address already in "
        f"use), so the scheduler cannot listen there; pick another --port, or leave it out "
        f"here for a free one\n")
    assert_no_strays(token)
    check_scheduler_port("127.0.0.1", port, local=True)  # closed: free again


# ----------------------------------------------------------------------------------------
# Supervision with light processes (no MXNet)
# ----------------------------------------------------------------------------------------

def test_timeout_stops_the_job_and_kills_what_ignores_sigterm(tmp_path, token):
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(SLEEPER, encoding="utf-8")
    # The shell ignores SIGTERM before Python starts (an ignored signal stays ignored across
    # exec), so the workers ignore it however slowly Python starts. The clock runs from
    # before the launcher forks its four processes, and forking this large test process
    # took over a second on a busy machine: the timeout leaves room for that.
    deaf = ["sh", "-c", "trap '' TERM; exec \"$0\" \"$@\"", sys.executable, str(sleeper)]
    result = launch(deaf, workers=2, server_command=[sys.executable, str(sleeper)],
                    timeout=6, grace=0.5, echo=False)
    assert (result.outcome, result.returncode) == ("timeout", 124)
    assert "timeout of 6 s" in result.message and "worker 0" in result.message
    for worker in result.workers:  # ignored SIGTERM: killed after the grace period
        assert (worker.returncode, worker.stopped) == (-signal.SIGKILL, True)
    assert result.process("server 0").returncode == -signal.SIGTERM
    assert_no_strays(token)


def test_sigint_goes_to_the_workers_and_a_second_one_kills_at_once(tmp_path, token):
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(SLEEPER, encoding="utf-8")
    # A grace period no test run reaches: ending the job is the second SIGINT's doing.
    launcher = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "launch_distributed.py"), "--workers", "2",
         "--grace", "3600", "--timeout", "3600", "--server-command",
         f"{sys.executable} {sleeper}", "--", sys.executable, str(sleeper), "--stubborn"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(launcher.stdout)
    try:
        output.wait_for("] ready", 4)  # scheduler, server, 2 workers
        launcher.send_signal(signal.SIGINT)
        output.wait_for("got SIGINT", 2)  # forwarded to the workers (only)
        launcher.send_signal(signal.SIGINT)  # the user insists: no waiting for the grace
        launcher.wait(timeout=DEADLINE)
        lines = output.rest()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 128 + signal.SIGINT
    assert sorted(line for line in lines if "got SIGINT" in line) == [
        "[worker 0] got SIGINT", "[worker 1] got SIGINT"]
    assert "[launcher] killing scheduler, server 0, worker 0, worker 1 (a second signal came)" \
        in lines
    assert_no_strays(token)


def interrupt_when_ready(folder: Path, count: int) -> threading.Thread:
    """A thread that sends this process SIGINT once ``count`` processes are ready (each
    sleeper writes a file into ``folder``), or after the deadline: ``launch`` running in
    the main thread takes it as the user's Ctrl-C and stops the job."""
    def watch() -> None:
        end = time.monotonic() + DEADLINE
        while len(list(folder.iterdir())) < count and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_remote_processes_stop_when_their_ssh_stdin_closes(tmp_path, token, fake_ssh,
                                                           monkeypatch):
    ssh_command, log = fake_ssh
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(SLEEPER, encoding="utf-8")
    ready = tmp_path / "ready"
    ready.mkdir()
    monkeypatch.setenv("SLEEPER_READY_DIR", str(ready))  # ssh passes it on, as a shell would
    hosts = [Host("node-a", 1, "127.0.0.1"), Host("node-b", 1, "127.0.0.1")]
    # Should the job end early, a late SIGINT must not reach pytest.
    previous = signal.signal(signal.SIGINT, lambda number, frame: None)
    try:
        watcher = interrupt_when_ready(ready, 5)
        result = launch([sys.executable, str(sleeper)], workers=2, hosts=hosts,
                        port=free_port(), server_command=[sys.executable, str(sleeper)],
                        ssh_command=ssh_command, timeout=DEADLINE, grace=1.0, echo=False)
        watcher.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(list(ready.iterdir())) == 5, result.message
    assert (result.outcome, result.returncode) == ("interrupted", 128 + signal.SIGINT)
    assert sorted(log.read_text().splitlines()) == [
        "node-a scheduler", "node-a server", "node-a worker", "node-b server", "node-b worker"]
    for process in result.processes:  # the remote watchdog's SIGTERM, seen through ssh
        assert process.output[0] == "ready"
        assert process.returncode == 128 + signal.SIGTERM, process
    assert_no_strays(token)


# ----------------------------------------------------------------------------------------
# A real loopback cluster: 1 scheduler, 1-2 servers, 2 workers
# ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_train_in_sync(tmp_path, token, capsys):
    result = launch([*WORKER, str(tmp_path)], workers=2, servers=1, timeout=DEADLINE, grace=3)
    assert (result.outcome, result.returncode) == ("finished", 0), result.message
    assert_trained_in_sync(read_runs(tmp_path))
    assert [p.label for p in result.processes] == ["scheduler", "server 0", "worker 0",
                                                   "worker 1"]
    assert all(p.returncode == 0 and not p.stopped for p in result.workers)
    assert "step 7" in result.process("worker 1").output[-1]
    streamed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("[worker 0] step 7 loss") for line in streamed)
    assert any(line.startswith("[worker 1] kvstore rank") for line in streamed)
    assert_no_strays(token)


@pytest.mark.slow
def test_a_killed_worker_stops_the_job_with_its_last_lines(tmp_path, token):
    result = launch([*WORKER, str(tmp_path), "--steps", "500"], workers=2, servers=1,
                    env={"DIST_TEST_DIE_AFTER": "2", "DIST_TEST_DIE_RANK": "1"},
                    timeout=DEADLINE, grace=2, echo=False)
    dead = next(p for p in result.workers if "dying on purpose" in p.output)
    survivor = next(p for p in result.workers if p is not dead)
    assert (result.outcome, result.failed) == ("failed", dead.label)
    assert (dead.returncode, result.returncode) == (-signal.SIGKILL, 128 + signal.SIGKILL)
    assert result.message.startswith(f"{dead.label} (pid {dead.pid}) failed after")
    assert "killed by SIGKILL" in result.message
    assert "    dying on purpose" in result.message  # its last lines
    # The survivor waits forever in its next push/pull (it never reaches its SIGTERM
    # check between steps): killed after the grace period. Scheduler and server too.
    assert (survivor.returncode, survivor.stopped) == (-signal.SIGKILL, True)
    for label in ("scheduler", "server 0"):
        assert result.process(label).stopped
    assert not read_runs(tmp_path)
    assert_no_strays(token)


@pytest.mark.slow
def test_sigterm_to_the_launcher_stops_every_process(tmp_path, token):
    launcher = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "launch_distributed.py"), "--workers", "2",
         "--servers", "1", "--timeout", "3600", "--grace", "5", "--",
         *WORKER, str(tmp_path), "--steps", "100000"],
        cwd=REPO_ROOT, env={**os.environ, "DIST_TEST_STEP_SLEEP": "0.5"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(launcher.stdout)
    try:
        output.wait_for(" step 1 loss", 2)  # both workers are training
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=DEADLINE)
        lines = output.rest()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert launcher.returncode == 128 + signal.SIGTERM
    text = "\n".join(lines)
    assert "[worker 0] step 1 loss" in text and "[worker 1] step 1 loss" in text
    assert "[launcher] SIGTERM received" in text
    assert "stopping on SIGTERM" in text  # forwarded: a worker stopped between steps
    assert_no_strays(token)


@pytest.mark.slow
def test_hosts_file_through_an_ssh_command(tmp_path, token, fake_ssh):
    ssh_command, log = fake_ssh
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("# two 'machines'\nlocalhost\n127.0.0.1 slots=1\n")
    out = tmp_path / "run"
    out.mkdir()
    code = launch_main(["--hosts", str(hosts_file), "--workers", "2", "--port", str(free_port()),
                 "--timeout", str(DEADLINE), "--grace", "3", "--ssh-command", ssh_command,
                 "--workdir", str(out), "--", *WORKER, "."])
    assert code == 0
    # scheduler and a server on the first host, a server on the second, a worker on each
    assert sorted(log.read_text().splitlines()) == [
        "127.0.0.1 server", "127.0.0.1 worker", "localhost scheduler", "localhost server",
        "localhost worker"]
    assert_trained_in_sync(read_runs(out))  # written to "." = --workdir on the "hosts"
    assert_no_strays(token)
