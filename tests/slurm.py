"""A real single-node SLURM for tests: ``munged``, ``slurmctld`` and ``slurmd`` started as root.

Everything lives in one folder (config, munge key and socket, state, logs) on free ports, and
the config is found through ``SLURM_CONF``, so nothing under ``/etc`` changes and a SLURM already
on the machine is left alone. Needs Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs
them) and root (the daemons run as root, without systemd). Where SLURM cannot start, the
``slurm`` fixture skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    """Most of this machine's memory (MB), the node's RealMemory."""
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return max(1024, int(total_kb / 1024 * 0.8))


def slurm_conf(folder: Path, host: str) -> str:
    """A one-node, one-partition (``debug``) config for this machine."""
    return "\n".join([
        "ClusterName=dfltest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"AuthInfo=socket={folder / 'munge.socket'}",
        f"StateSaveLocation={folder / 'state'}",
        f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
        f"SlurmdPidFile={folder / 'slurmd.pid'}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}",
        f"SlurmdLogFile={folder / 'slurmd.log'}",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={_memory_mb()} State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


class LocalSlurm:
    """One SLURM node on this machine; ``env`` is what ``sbatch``/``squeue`` callers need."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.env = {"SLURM_CONF": str(self.folder / "slurm.conf")}
        self.processes: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> None:
        """Start the three daemons and wait for an idle node; :class:`SlurmUnavailable` if not."""
        missing = [name for name in (*DAEMONS, "sinfo", "sbatch") if shutil.which(name) is None]
        if missing:
            raise SlurmUnavailable(f"not installed: {', '.join(missing)} (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise SlurmUnavailable("the SLURM daemons are started as root; these tests run as a user")
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # munge clients need to reach the socket
        key = self.folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (self.folder / "slurm.conf").write_text(slurm_conf(self.folder, socket.gethostname()))
        f = self.folder
        self._spawn("munged", "-F", "--force", f"--socket={f / 'munge.socket'}", f"--key-file={key}",
                    f"--pid-file={f / 'munged.pid'}", f"--log-file={f / 'munged.log'}",
                    f"--seed-file={f / 'munged.seed'}")
        self._wait(lambda: (f / "munge.socket").exists(), 10, "munged did not create its socket")
        self._spawn("slurmctld", "-D", "-i")
        self._spawn("slurmd", "-D")
        self._wait(self.idle, timeout, "no idle SLURM node")

    def _spawn(self, *command: str) -> None:
        log = open(self.folder / f"{command[0]}.out", "wb")
        self.processes.append(subprocess.Popen(
            command, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        ))
        log.close()

    def _wait(self, ready, timeout: float, problem: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                self.stop()
                why = f"{', '.join(dead)} exited" if dead else f"after {timeout:.0f} s"
                raise SlurmUnavailable(f"{problem} ({why}); logs in {self.folder}: {self.log_tail()}")
            time.sleep(0.3)

    def command(self, *args: str) -> str:
        """Run a SLURM client command (``squeue``, ``sinfo``) against this node; its stdout."""
        done = subprocess.run(args, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30)
        return done.stdout

    def idle(self) -> bool:
        return "idle" in self.command("sinfo", "-h", "-o", "%T")

    def jobs(self) -> list[str]:
        """Ids of the jobs queued or running."""
        return self.command("squeue", "-h", "-o", "%i").split()

    def log_tail(self) -> str:
        lines = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.folder / name
            if path.exists():
                lines += [f"{name}: {line}" for line in path.read_text(errors="replace").splitlines()[-2:]]
        return " | ".join(lines)

    def stop(self) -> None:
        """Stop the daemons this object started (slurmd first), by their process handles."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A started :class:`LocalSlurm` for the session (skips, saying why, where SLURM cannot run)."""
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except SlurmUnavailable as reason:
        pytest.skip(f"SLURM cannot start here: {reason}")
    yield cluster
    for job in cluster.jobs():
        cluster.command("scancel", job)
    cluster.stop()
