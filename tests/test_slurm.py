"""The cluster path on a real SLURM: a one-node cluster (Debian's slurmctld, slurmd and munge,
installed here when missing, as root) with a `cpu` and a `gpu` partition, and a small target of
the demo run through `snakemake --profile slurm` as the README has users type it (the profile
linked by setup), layered with the small-site profile and the real executor plugin.

Skipped, with the reason, where SLURM cannot be installed or started (not root, no apt-get);
in CI (CI=true) that is a failure instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake

SLURM_PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
SLURM_PROGRAMS = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged"]
# The demo's data, its models, the val index and the cl80 val set: one CPU job each and one
# generation shard (100 images) on the GPU partition.
SHARD = "results/demo/generate/demo10/cl80/val/shard~0"
TARGETS = ["results/demo/index/demo10/val.csv", "results/demo/generate/demo10/cl80/val/manifest.csv"]
GPU_RULES = {"generate_shard", "train_classifier", "evaluate_model"}
THREADS = 2  # the small-site profile's max-threads: the shard's CPUs and threads
NODE_MB = 13000  # the shard's memory on its retry (resources.smk: 1.5 x 8 GB), and some to spare


def _unavailable(reason: str):
    if os.environ.get("CI") == "true":
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


def _install_slurm() -> None:
    if all(shutil.which(p) for p in SLURM_PROGRAMS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _unavailable("SLURM is not installed, and installing it needs root and apt-get: "
                     f"apt-get install {' '.join(SLURM_PACKAGES)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *SLURM_PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode:
            _unavailable(f"{' '.join(cmd)} failed: {(done.stdout + done.stderr)[-2000:]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
    return total_kb // 1024 - 2048


class Cluster:
    """A one-node SLURM of its own (ports, munge socket, state) under `root`, so that it touches
    no system SLURM and two test runs do not meet."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "slurm.conf"
        # The executor's job step drops SLURM_CONF before its `srun` (snakemake-executor-plugin-
        # slurm-jobstep 0.6 keeps a few SLURM_* variables only), so srun would look for
        # /etc/slurm/slurm.conf; a wrapper first on PATH hands it this cluster's config instead.
        shims = root / "bin"
        shims.mkdir()
        (shims / "srun").write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {shutil.which("srun") or "srun"} "$@"\n')
        (shims / "srun").chmod(0o755)
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=f"{shims}{os.pathsep}{os.environ['PATH']}")
        self.cpus = os.cpu_count() or 1
        self.memory_mb = _memory_mb()

    def run(self, *cmd: str, check: bool = True, timeout: int = 30) -> str:
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stdout}{done.stderr}")
        return done.stdout

    def write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "log"):
            (r / d).mkdir(mode=0o700)
        (r / "munge.key").write_bytes(os.urandom(1024))
        (r / "munge.key").chmod(0o400)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(f"""\
ClusterName=genrobust-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={r}/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName=genrobust NodeHostname={host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} \
Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=genrobust Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=genrobust MaxTime=INFINITE State=UP
""")
        # Two GPUs the scheduler can hand out; no CUDA device behind them (jobs run on the CPU).
        (r / "gres.conf").write_text("NodeName=genrobust Name=gpu File=/dev/null\n"
                                     "NodeName=genrobust Name=gpu File=/dev/zero\n")

    def start(self) -> None:
        r = self.root
        self.run("munged", "--force", f"--socket={r}/munge.socket", f"--key-file={r}/munge.key",
                 f"--pid-file={r}/munged.pid", f"--log-file={r}/log/munged.log", f"--seed-file={r}/munged.seed")
        self.run("slurmctld", "-f", str(self.conf))
        self.run("slurmd", "-f", str(self.conf), "-N", "genrobust")
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.run("sinfo", "-h", "-N", "-o", "%T", check=False).split()
            if state and all(s == "idle" for s in state):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the SLURM node did not come up: {state}\n" + self.logs())

    def stop(self) -> None:
        self.run("scancel", "--full", "--user", "root", check=False)
        for name in ("slurmd", "slurmctld", "munged"):  # only the daemons this test started
            pid_file = self.root / f"{name}.pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().split()[0]), 15)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted((self.root / "log").glob("*.log")))

    def jobs(self) -> list[dict[str, str]]:
        """Every job this cluster has seen (MinJobAge keeps finished ones), as scontrol's fields."""
        out = self.run("scontrol", "show", "job", "-o", check=False)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.startswith("JobId=")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _install_slurm()
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    if c.cpus < THREADS or c.memory_mb < NODE_MB:
        _unavailable(f"the test node needs {THREADS} CPUs and {NODE_MB} MB; this machine has {c.cpus} and "
                     f"{c.memory_mb} MB to spare")
    c.write_config()
    try:
        c.start()
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        c.stop()
        _unavailable(f"a one-node SLURM did not start: {err}")
    yield c
    c.stop()


def _link_profile(tmp_path: Path) -> dict[str, str]:
    """The environment of a user after `make setup`: `--profile slurm` finds the linked profile
    (in a private config home here, not the machine's)."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    link = subprocess.run(["bash", str(REPO / "envs/link-slurm-profile.sh")], env=env, capture_output=True, text=True)
    assert link.returncode == 0, link.stderr
    assert (tmp_path / "xdg/snakemake/slurm").resolve() == REPO / "workflow/profiles/slurm"
    return env


def _plan(*args: str, cwd: Path, env: dict) -> dict[str, list[tuple[int, dict[str, str]]]]:
    """A dry-run's jobs per rule: (threads, resources)."""
    exe = Path(sys.executable).with_name("snakemake")
    done = subprocess.run([str(exe), "-s", str(REPO / "Snakefile"), "-n", "--cores", "64", *args, "--quiet", "host"],
                          cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    plan: dict[str, list] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", done.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        if rule:
            threads = re.search(r"^\s+threads: (\d+)", block, re.M)
            resources = re.search(r"^\s+resources: (.*)", block, re.M)
            fields = dict(re.findall(r"(\w+)=([^,]+)", resources[1])) if resources else {}
            wildcards = re.search(r"^\s+wildcards: (.*)", block, re.M)
            fields["wildcards"] = wildcards[1] if wildcards else ""
            plan.setdefault(rule[1], []).append((int(threads[1]) if threads else 1, fields))
    return plan


def test_profiles_leave_cpus_to_the_rules_threads():
    for name in ("slurm", "small-site"):
        profile = yaml.safe_load((REPO / f"workflow/profiles/{name}/config.yaml").read_text())
        per_rule = [profile.get("default-resources") or {}, *(profile.get("set-resources") or {}).values()]
        assert not any({"cpus_per_task", "cpus_per_gpu"} & set(r) for r in per_rule), name


def test_the_slurm_profile_by_name_sizes_every_job_from_config(workdir, tmp_path):
    env = _link_profile(tmp_path)
    plan = _plan("--profile", "slurm", "--config", "check_paths=False", cwd=workdir, env=env)
    threads = {"generate_shard": 8, "train_classifier": 16, "evaluate_model": 8, "write_source_beton": 16,
               "write_val_beton": 16, "index_dataset": 1, "index_test_set": 1}
    for rule, jobs in plan.items():
        if rule in threads:
            assert {t for t, _ in jobs} == {threads[rule]}, rule
            assert all(int(r["mem_mb"]) > 0 and int(r["runtime"]) >= 10 for _, r in jobs), rule
            assert all((r.get("slurm_partition") == "gpu") == (rule in GPU_RULES) for _, r in jobs), rule

    def size(rule, **wildcards):
        want = ", ".join(f"{k}={v}" for k, v in wildcards.items())
        return next((int(r["runtime"]), int(r["mem_mb"])) for _, r in plan[rule] if r["wildcards"] == want)

    # Runtime follows the work: ImageNet-1K against ImageNet-100, more steps, more epochs x rows.
    in1k = size("train_classifier", dataset="imagenet1k", mix="real_100", arch="resnext50_32x4d", seed=0)
    in100 = size("train_classifier", dataset="imagenet100", mix="real_100", arch="resnext50_32x4d", seed=0)
    assert in1k[0] > 3 * in100[0]
    assert size("write_source_beton", dataset="imagenet1k", source="real") > size(
        "write_source_beton", dataset="imagenet100", source="real")
    assert size("generate_shard", dataset="imagenet1k", strategy="cl80", split="train", shard=0)[0] > size(
        "generate_shard", dataset="imagenet100", strategy="pixmix", split="train", shard=0)[0]

    # A small site caps every job's threads, and so its CPUs, at its nodes' size.
    small = _plan("--profile", "slurm", "--profile", str(REPO / "workflow/profiles/small-site"),
                  "--configfile", "config/demo.yaml", cwd=workdir, env=env)
    assert max(t for jobs in small.values() for t, _ in jobs) == THREADS
    assert all(int(r["runtime"]) <= 30 and int(r["mem_mb"]) <= 8500 for jobs in small.values() for _, r in jobs
               if "runtime" in r)


def _rule(job: dict[str, str]) -> str:
    return re.match(r"rule_(\w+?)(_wildcards_.*)?$", job["Comment"])[1]


def _minutes(limit: str) -> int:
    """SLURM's [D-]HH:MM:SS time limit in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, _ = map(int, clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m


def _files(root: Path) -> dict[str, bytes]:
    """The target's outputs that must not depend on where the jobs ran (no timings)."""
    out = {t: (root / t).read_bytes() for t in TARGETS}
    manifest = pd.read_csv(root / TARGETS[1])
    out.update({p: (root / "results/demo/generate/demo10/cl80/val" / p).read_bytes() for p in manifest["path"]})
    return out


@pytest.mark.slow
def test_a_demo_target_runs_through_slurm_and_survives_a_cancelled_job(cluster, workdir, tmp_path):
    start = time.time()
    # A local run at the same threads per job, to compare with.
    local = tmp_path / "local"
    shutil.copytree(workdir / "config", local / "config")
    result = snakemake(*TARGETS, "--configfile", "config/demo.yaml", "--cores", str(THREADS), cwd=local, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    local_seconds = time.time() - start

    env = dict(cluster.env, XDG_CONFIG_HOME=_link_profile(tmp_path)["XDG_CONFIG_HOME"],
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{cluster.env['PATH']}")

    command = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), *TARGETS,
               "--profile", "slurm", "--profile", str(REPO / "workflow/profiles/small-site"),
               "--configfile", "config/demo.yaml",
               "--slurm-init-seconds-before-status-checks", "2", "--slurm-keep-successful-logs",
               "--printshellcmds", "--quiet", "host"]
    log = tmp_path / "slurm-run.log"
    slurm_start = time.time()
    with log.open("w") as sink:
        run = subprocess.Popen(command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            # Cancel the generation shard once it has recorded its first batch: the retry must
            # resume it and end with exactly the files an uninterrupted run writes.
            progress = workdir / SHARD / "progress.jsonl"
            cancelled = None
            deadline = time.time() + 600
            while cancelled is None and run.poll() is None and time.time() < deadline:
                running = [j for j in cluster.jobs() if j["JobState"] == "RUNNING" and _rule(j) == "generate_shard"]
                if running and progress.exists() and progress.read_text().count("\n") >= 1:
                    cancelled = running[0]["JobId"]
                    cluster.run("scancel", cancelled)
                time.sleep(0.2)
            assert cancelled, "the shard was never seen running with progress to cancel\n" + log.read_text()[-4000:]
            run.wait(timeout=900)
        finally:
            if run.poll() is None:
                run.kill()
    print(f"SLURM test: local run {local_seconds:.0f} s, SLURM run with a cancelled job "
          f"{time.time() - slurm_start:.0f} s")
    output = log.read_text()
    assert run.returncode == 0, output[-6000:] + cluster.logs()

    # Every job went through sbatch: one SLURM job per Snakemake job (the shard twice), each in
    # its partition, GPU rules with a GPU, each with as many CPUs as the threads it ran with.
    jobs = cluster.jobs()
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(_rule(job), []).append(job)
    assert sorted((r, len(js)) for r, js in by_rule.items()) == [
        ("build_demo_models", 1), ("generate_shard", 2), ("index_dataset", 1), ("make_demo_data", 1)], by_rule
    for job in jobs:
        gpu = _rule(job) in GPU_RULES
        assert job["Partition"] == ("gpu" if gpu else "cpu"), job
        assert ("gpu:1" in job.get("TresPerJob", "")) == gpu, job
        assert int(job["NumCPUs"]) == (THREADS if _rule(job) == "generate_shard" else 1), job
    first, retry = sorted(by_rule["generate_shard"], key=lambda j: int(j["JobId"]))
    assert (first["JobId"], first["JobState"], retry["JobState"]) == (cancelled, "CANCELLED", "COMPLETED")
    assert {j["JobState"] for j in jobs} - {"CANCELLED"} == {"COMPLETED"}
    # The retry (attempt 2) asks for twice the time and half again the memory (resources.smk).
    assert _minutes(retry["TimeLimit"]) == 2 * _minutes(first["TimeLimit"]), (first, retry)
    memory = [int(j["MinMemoryNode"].rstrip("M")) for j in (first, retry)]
    assert abs(memory[1] - 1.5 * memory[0]) <= 2 and memory[0] >= 8000, memory
    assert re.search(rf"generate-shard .* --threads {THREADS} ", output), "the shard ran with other threads"

    # The same files as the local run, byte for byte, the cancelled and resumed shard included.
    slurm_files, local_files = _files(workdir), _files(local)
    assert slurm_files.keys() == local_files.keys() and len(slurm_files) == 2 + 100
    assert [k for k in slurm_files if slurm_files[k] != local_files[k]] == []

    # The job's own record of how it ran: the threads SLURM gave it, on the node's device.
    stats = json.loads((workdir / SHARD / "stats.json").read_text())
    assert (stats.get("threads"), stats.get("device")) == (THREADS, "cpu"), f"stats.json records {stats}"
