"""Worker processes: device pinning, exact budget, killed workers, shared storages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import PROBE_STUDY, TRIAL_PROBE, read_probe

from harness.workers import parse_devices, plan_workers

POSTGRES_URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")

def test_devices_are_assigned_round_robin_with_one_gpu_each():
    slots = plan_workers(3, ["0", "1"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0"]
    assert [s.device for s in slots] == ["gpu:0", "gpu:1", "gpu:0"]
    assert all(s.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for s in slots)


def test_cpu_workers_split_the_cores_and_hide_gpus():
    slots = plan_workers(2, [], cpu_count=8)
    assert [s.env["HARNESS_THREADS"] for s in slots] == ["4", "4"]
    assert all(s.env["CUDA_VISIBLE_DEVICES"] == "" for s in slots)
    assert [s.device for s in slots] == ["cpu:0", "cpu:1"]


def test_cpu_workers_split_only_the_cores_this_process_may_use(monkeypatch):
    """Under ``taskset -c 0`` (or a container's cpuset) a worker gets 1 thread, not a share
    of every core of the machine."""
    from harness.devices import usable_cpus

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert usable_cpus() == 1
    assert plan_workers(1, [])[0].env["HARNESS_THREADS"] == "1"
    monkeypatch.delattr(os, "sched_getaffinity")  # a platform without affinity
    assert usable_cpus() == 8


@pytest.mark.skipif(not shutil.which("taskset"), reason="needs taskset (util-linux)")
def test_a_process_pinned_by_taskset_plans_one_thread():
    code = "from harness.devices import plan_workers; print(plan_workers(1, [])[0].env)"
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code],
                          capture_output=True, text=True, check=True)
    assert "'HARNESS_THREADS': '1'" in done.stdout


def test_devices_option():
    assert parse_devices(None, ["0", "1"]) == ["0", "1"]
    assert parse_devices("1", ["0", "1"]) == ["1"]
    assert parse_devices("cpu", ["0", "1"]) == []
    from harness.errors import HarnessError

    with pytest.raises(HarnessError, match="no GPU 7"):
        parse_devices("0,7", ["0", "1"])


def _run(tmp_path: Path, trials: int, workers: int, *extra: str, env_extra=None, wait=True):
    study = tmp_path / "study.toml"
    study.write_text(PROBE_STUDY.format(name="spread", trials=trials, seed=1))
    env = {
        **os.environ,
        "PROBE_DIR": str(tmp_path),
        "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1",
        **(env_extra or {}),
    }
    command = [
        sys.executable, "-m", "harness", "run", str(study), "--workers", str(workers),
        "--runs-dir", str(tmp_path / "runs"), "--plugin", str(TRIAL_PROBE), "--no-progress", *extra,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    if not wait:
        return process
    out, err = process.communicate(timeout=500)
    assert process.returncode == 0, err[-3000:]
    return pd.read_csv(tmp_path / "runs" / "spread" / "trials.csv")


def test_three_workers_meet_the_exact_budget_each_on_its_own_device(tmp_path):
    """Journal storage shared by 3 workers, 2 injected GPUs: 5 trials, no surplus, pinned."""
    table = _run(tmp_path, trials=5, workers=3, env_extra={"HARNESS_GPUS": "0,1"})
    assert len(table) == 5, "5 trials, not 5 + surplus"
    assert sorted(table["number"]) == list(range(5)), "no duplicate or lost trial"
    assert (table["state"] == "complete").all()
    assert table["worker"].nunique() >= 2
    by_worker = table.groupby("worker")["device"].unique().to_dict()
    expected = {"w0": "gpu:0", "w1": "gpu:1", "w2": "gpu:0"}
    for worker, devices in by_worker.items():
        assert list(devices) == [expected[worker]]
    seen = {line.device for line in read_probe(tmp_path)}
    assert seen <= {"'0'", "'1'"} and len(seen) == 2, "each process saw only its own device"


def test_killed_worker_trial_is_rerun_and_the_budget_is_met(tmp_path):
    process = _run(tmp_path, trials=4, workers=2, env_extra={"PROBE_HOLD": "0"}, wait=False)
    deadline = time.time() + 200
    victim = None
    while time.time() < deadline and victim is None:
        victim = next((line.pid for line in read_probe(tmp_path) if line.number == 0), None)
        time.sleep(0.5)
    assert victim is not None, "trial 0 never started"
    os.kill(victim, signal.SIGKILL)
    out, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "spread" / "trials.csv").set_index("number")
    assert len(table) == 5, "4 counted trials plus the interrupted one"
    assert table.loc[0, "state"] == "failed" and not table.loc[0, "counted"]
    assert "died" in table.loc[0, "fail_reason"] and "-9" in table.loc[0, "fail_reason"]
    rerun = table[table["retry_of"] == 0]
    assert len(rerun) == 1 and rerun["state"].iloc[0] == "complete"
    assert (table.drop(index=0)["state"] == "complete").all()


def test_sqlite_storage_shared_by_two_workers(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    table = _run(tmp_path, 4, 2, "--storage", url)
    assert sorted(table["number"]) == [0, 1, 2, 3]
    assert (table["state"] == "complete").all()


@pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set HARNESS_TEST_POSTGRES_URL (.ci/run starts PostgreSQL and sets it)",
)
def test_postgresql_storage_shared_by_two_workers(tmp_path):
    import optuna

    name = f"spread-{os.getpid()}-{int(time.time())}"
    study = tmp_path / "study.toml"
    study.write_text(PROBE_STUDY.format(name=name, trials=4, seed=1))
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "worker", str(study), "--storage", POSTGRES_URL,
         "--workers", "2", "--runs-dir", str(tmp_path / "runs"), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "runs" / name / "trials.csv")
    assert sorted(table["number"]) == [0, 1, 2, 3]
    assert (table["state"] == "complete").all()
    stored = optuna.load_study(study_name=name, storage=POSTGRES_URL)
    assert len([t for t in stored.trials if t.state.is_finished()]) >= 4
    optuna.delete_study(study_name=name, storage=POSTGRES_URL)


@pytest.fixture
def postgres_database():
    """A database of its own on the test server (so that its connections are this test's
    alone) with Optuna's schema, dropped afterwards; yields (its URL, a connection to the
    server's database)."""
    psycopg = pytest.importorskip("psycopg")
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    name = f"harness_pool_{os.getpid()}_{int(time.time())}"
    server = psycopg.connect(
        base.set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    server.execute(f"CREATE DATABASE {name}")
    try:
        # Optuna's schema first: two machines creating it at the same moment collide.
        import optuna

        url = base.set(database=name)
        optuna.storages.RDBStorage(url.render_as_string(hide_password=False)).engine.dispose()
        yield url, server
    finally:
        server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        server.close()


@pytest.mark.skipif(
    not POSTGRES_URL,
    reason="set HARNESS_TEST_POSTGRES_URL (.ci/run starts PostgreSQL and sets it)",
)
def test_machines_sharing_postgresql_hold_a_bounded_set_of_connections(
    postgres_database, tmp_path
):
    """Two machines (``harness worker`` from two folders, 2 and 1 workers): each holds at
    most POOL_CONNECTIONS per process (its supervisor and each worker), sampled every
    0.5 s, and opens no others while it runs (each progress poll used to open one). The
    issue asks for a minute of polling; the run's length (30-60 s here) keeps the suite short."""
    from harness.backends.optuna_storage import POOL_CONNECTIONS

    url, server = postgres_database
    study = tmp_path / "study.toml"
    study.write_text(PROBE_STUDY.format(name="pool", trials=4, seed=1))
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    workers = {"machine-a": 2, "machine-b": 1}
    commands = {}
    for machine, count in workers.items():
        folder = tmp_path / machine
        folder.mkdir()
        storage = url.set(query={"application_name": machine})
        commands[machine] = subprocess.Popen(
            [sys.executable, "-m", "harness", "worker", str(study), "--storage",
             storage.render_as_string(hide_password=False), "--workers", str(count),
             "--no-progress"],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
    samples = []  # while both machines run: {machine: {(backend pid, its start)}}
    deadline = time.time() + 300
    while all(c.poll() is None for c in commands.values()) and time.time() < deadline:
        rows = server.execute(
            "SELECT pid, backend_start, application_name FROM pg_stat_activity "
            "WHERE datname = %s",
            (url.database,),
        ).fetchall()
        samples.append({m: {(pid, start) for pid, start, app in rows if app == m}
                        for m in workers})
        time.sleep(0.5)
    for machine, command in commands.items():
        _, err = command.communicate(timeout=300)
        assert command.returncode == 0, f"{machine}: {err[-3000:]}"

    assert len(samples) >= 20, "both machines ran for at least 10 s of polling"
    for machine, count in workers.items():
        bound = POOL_CONNECTIONS * (count + 1)  # docs/distributed.md
        most = max(len(s[machine]) for s in samples)
        assert 0 < most <= bound, f"{machine}: {most} connections at once, bound {bound}"
        opened = set().union(*(s[machine] for s in samples))
        assert len(opened) <= bound, f"{machine} opened {len(opened)} connections: churn"
    # The same backends at both ends of the window in which every process was connected.
    totals = [sum(len(b) for b in s.values()) for s in samples]
    steady = [s for s, total in zip(samples, totals, strict=True) if total == max(totals)]
    assert steady[0] == steady[-1], "backends replaced while every process was running"


@pytest.mark.parametrize("in_process", [False, True])
def test_orchestrating_process_leaves_tensorflow_and_the_gpus_to_its_workers(
    in_process, monkeypatch, plugins, write_study, tmp_path
):
    """Only an in-process run trains in the orchestrating process; otherwise it never
    starts TensorFlow (no GPU memory, no 10 s import) before its workers run."""
    import harness.orchestrator
    import harness.quiet
    from harness.orchestrator import RunOptions, run_study
    from harness.study import load_study
    from harness.workers import configure_tensorflow

    class Started(Exception):
        pass

    def record(configure=None):
        raise Started(configure)

    def supervise(*args, **kwargs):
        raise Started("workers")

    monkeypatch.setattr(harness.orchestrator, "start_tensorflow", record)
    monkeypatch.setattr(harness.orchestrator, "_supervise", supervise)
    spec = load_study(write_study(PROBE_STUDY.format(name="gpus", trials=1, seed=1)), plugins)
    with pytest.raises(Started) as started:
        run_study(
            spec,
            plugins,
            RunOptions(runs_dir=tmp_path / "runs", in_process=in_process, show_progress=False),
        )
    assert started.value.args[0] == (configure_tensorflow if in_process else "workers")


def _record_workers(monkeypatch) -> list:
    """Wrap ``harness.workers.start_worker``: each call appended as (process, started early)."""
    import harness.workers

    started = []
    real = harness.workers.start_worker

    def recording(job, errors, handover=None):
        process = real(job, errors, handover)
        started.append((process, handover is not None))
        return process

    monkeypatch.setattr(harness.workers, "start_worker", recording)
    return started


def test_the_first_worker_starts_early_and_runs_the_trials(
    monkeypatch, tmp_path, write_study, capsys
):
    """`harness run` starts its worker before the data check and the storage set-up (it
    imports TensorFlow meanwhile), then hands it the study: one process runs every trial,
    and none is left when the command returns."""
    import multiprocessing as mp

    from harness import cli

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PROBE_DIR", str(tmp_path))
    started = _record_workers(monkeypatch)
    study = write_study(PROBE_STUDY.format(name="early", trials=2, seed=3))
    code = cli.main(
        ["run", str(study), "--runs-dir", str(tmp_path / "runs"), "--plugin", str(TRIAL_PROBE),
         "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    assert [early for _, early in started] == [True]
    pids = {line.pid for line in read_probe(tmp_path)}
    assert pids == {started[0][0].pid}
    assert started[0][0].exitcode == 0
    assert mp.active_children() == []


def test_a_worker_started_early_is_stopped_when_the_data_check_fails(
    monkeypatch, tmp_path, write_study, capsys
):
    """The data check runs after the worker started: when it refuses the data, the
    command still exits 2 with one line, writes nothing, and leaves no process behind."""
    import gzip
    import multiprocessing as mp

    from harness import cli

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    started = _record_workers(monkeypatch)
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (data / f"{name}.gz").write_bytes(gzip.compress(b"not an IDX file"))
    study = write_study(
        PROBE_STUDY.format(name="refused", trials=2, seed=3).replace(
            'name = "digits"\nlimit = 200', f'name = "mnist"\npath = "{data}"'
        )
    )
    code = cli.main(["run", str(study), "--runs-dir", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "IDX" in err, err
    assert [early for _, early in started] == [True]
    assert started[0][0].exitcode == -signal.SIGTERM  # stopped, not left importing TensorFlow
    assert mp.active_children() == []
    assert not (tmp_path / "runs").exists()


def _another_machines_trial(plugins, study_path: Path, url: str, beat_age_s: int) -> None:
    """The study created on shared SQLite with one RUNNING trial of another machine whose
    last heartbeat is ``beat_age_s`` seconds old (by the database's clock), as a machine
    killed mid-trial leaves it."""
    import optuna
    from sqlalchemy import create_engine, text

    from harness.backends import optuna as backend
    from harness.study import load_study

    spec = load_study(study_path, plugins)
    backend.prepare(spec, study_path.parent / "prepared", url)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=spec.name, storage=storage)
    trial = study.ask()
    spec.space.sample(backend._Suggester(trial))
    for key, value in {"host": "another-machine", "pid": 1, "worker": "w0"}.items():
        trial.set_user_attr(key, value)
    storage.record_heartbeat(trial._trial_id)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE trial_heartbeats SET heartbeat = datetime('now', :age)"),
            {"age": f"-{beat_age_s} seconds"},
        )
    engine.dispose()
    storage.engine.dispose()


def _heartbeat_study(write_study, trials: int, grace: int, timeout: int | None = None) -> Path:
    study = PROBE_STUDY.format(name="lost", trials=trials, seed=1).replace(
        'pruner = "none"', f'pruner = "none"\nheartbeat_seconds = 1\ngrace_seconds = {grace}'
    )
    if timeout:
        study = study.replace("seed = 1", f"seed = 1\ntimeout = {timeout}")
    return write_study(study)


def test_a_silent_machines_trial_is_interrupted_and_run_again_by_the_survivor(
    monkeypatch, plugins, write_study, tmp_path, capsys
):
    """A RUNNING trial of another host whose heartbeat is older than the grace period (its
    machine was killed) is marked interrupted with the host and its silence, run again by
    ``harness worker`` on the same storage, and the study ends with exactly its budget."""
    from harness import cli

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = _heartbeat_study(write_study, trials=2, grace=5)
    _another_machines_trial(plugins, study, url, beat_age_s=600)
    code = cli.main(["worker", str(study), "--storage", url, "--runs-dir",
                     str(tmp_path / "runs"), "--workers", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    table = pd.read_csv(tmp_path / "runs" / "lost" / "trials.csv").set_index("number")
    assert len(table) == 3, "2 counted trials plus the lost one"
    lost = table.loc[0]
    assert lost["state"] == "failed" and not lost["counted"]
    assert "stopped sending heartbeats" in lost["fail_reason"]
    assert "another-machine" in lost["fail_reason"] and "s ago" in lost["fail_reason"]
    rerun = table[table["retry_of"] == 0]
    assert len(rerun) == 1 and rerun["state"].iloc[0] == "complete"
    assert (table.drop(index=0)["state"] == "complete").all()
    assert "2 of 2 trials finished" in out


def test_a_machine_waits_for_a_live_machines_trial_until_its_deadline(
    monkeypatch, plugins, write_study, tmp_path, capsys
):
    """A RUNNING trial of another host whose heartbeat is fresh holds the budget's last
    slot: the survivor keeps polling instead of ending, and when its deadline passes it
    says so in one line and exits 3 (the trial is left to its machine)."""
    from harness import cli

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = _heartbeat_study(write_study, trials=1, grace=600, timeout=8)
    _another_machines_trial(plugins, study, url, beat_age_s=0)
    started = time.time()
    code = cli.main(["worker", str(study), "--storage", url, "--runs-dir",
                     str(tmp_path / "runs"), "--workers", "1", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 3, err[-3000:]
    assert time.time() - started >= 8, "it polled until its deadline"
    lines = [line for line in out.splitlines() if "still running on other machines" in line]
    assert len(lines) == 1, out
    table = pd.read_csv(tmp_path / "runs" / "lost" / "trials.csv")
    assert list(table["state"]) == ["running"], "the live machine's trial is left alone"
