"""Scheduled rounds of N registered models x a 10,000-row simulated batch, on 1 or K monitor replicas.

Starts the real services the tests use (PostgreSQL, SeaweedFS, an MLflow tracking server),
registers the models (one real training run and upload, the other names registered as their own
models on the same logged model: ``tests.monitor.helpers.register_copies``), then for each model count
and replica count starts K monitor processes (``create_app`` on one monitor database, one process =
one replica) and has them all run the same slot's round at once:

  cold     - fresh processes, fresh database (download every model, build every profile)
  restart  - fresh processes, profiles stored in the database (what a restart sees)
  warm     - the same processes again (model and profile caches hot)

Per round: wall seconds (start to the last replica done), seconds per model, the replicas' shares
of the units, CPU seconds of the monitor processes, peak RSS of the largest replica, and the
MLflow run outbox backlog when the round ends (runs are logged in the background, after the
verdicts) and how long after the round it took to empty (the next round waits for that).
``--code DIR`` runs the monitor code of another checkout with its own .venv (the "before"
figures: ``--code /work/main``); there run one replica: without shared rounds only the leader
evaluates.

    .venv/bin/python bench/monitor_round.py --models 20,200,1000 --replicas 1,3 [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


# --- one replica (a child process) ------------------------------------------------------------------

def replica(code: str, settings_json: str) -> int:
    sys.path.insert(0, code)
    from monitor.app import create_app
    from monitor.settings import MonitorSettings

    settings = MonitorSettings.model_validate(json.loads(settings_json))
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    app = create_app(settings)
    monitor = app.extensions["driftline"]
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        slot = int(command[1])
        profile = command[2] if len(command) > 2 else None
        profiler = None
        if profile:
            from pyinstrument import Profiler  # only with --profile (pip install pyinstrument)

            profiler = Profiler(interval=0.002, async_mode="disabled")
            profiler.start()
        cpu0 = _cpu()
        started = time.perf_counter()
        outcomes = monitor.scheduler.run_round(slot)
        seconds = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
            Path(profile).with_suffix(f".{os.getpid()}.txt").write_text(
                profiler.output_text(unicode=False, color=False, show_all=False))
        print(json.dumps({"seconds": seconds, "evaluations": len(outcomes), "cpu": _cpu() - cpu0,
                          "statuses": sorted({o.status for o in outcomes}),
                          "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    monitor.close(grace_seconds=2)
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the orchestrator --------------------------------------------------------------------------------

class Replicas:
    def __init__(self, python: str, code: str, settings: dict[str, str], count: int, logdir: Path) -> None:
        argv = [python, str(Path(__file__).resolve()), "--replica", "--code", code,
                "--settings", json.dumps(settings)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MONITOR_", "DRIFTLINE_"))}
        env["PYTHONPATH"] = f"{code}:{REPO}"
        # As `python -m monitor serve` runs the workers (monitor/cli.py): one BLAS/OpenMP thread per
        # process. Without it the label-free estimator's gradient boosting (cold rounds) spins
        # OpenMP threads against the other replicas on 2 cores: minutes per model under load.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(variable, "1")
        self.procs = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       env=env, cwd=code,
                                       stderr=open(logdir / f"replica-{i}.log", "a"))  # noqa: SIM115
                      for i in range(count)]
        for proc in self.procs:
            self._read(proc)

    @staticmethod
    def _read(proc: subprocess.Popen) -> dict:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"replica {proc.pid} exited ({proc.poll()}); see its log")
        return json.loads(line)

    def round(self, slot: int, profile: str = "") -> tuple[float, list[dict]]:
        started = time.perf_counter()
        for proc in self.procs:
            proc.stdin.write(f"round {slot} {profile}\n")
            proc.stdin.flush()
        answers = [self._read(proc) for proc in self.procs]
        return time.perf_counter() - started, answers

    def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="20")
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--only", default=None,
                        help="only these MODELSxREPLICAS groups, e.g. 200x1,200x3,1000x1 (default: all)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", default="cold,restart,warm,warm")
    parser.add_argument("--code", default=str(REPO))
    parser.add_argument("--drain-max", type=float, default=600.0,
                        help="wait at most this long after a round for the MLflow run outbox to empty")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="profile the last warm round of each group with pyinstrument "
                             "(in every replica), text reports in DIR")
    parser.add_argument("--label", default=None, help="name of the results file (default: after/before)")
    parser.add_argument("--replica", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica:
        return replica(args.code, args.settings)

    sys.path.insert(0, str(REPO))
    import mlflow

    from tests.monitor.helpers import register_copies
    from tests.services import postgres
    from tests.services.seaweedfs import CHECKSUM_ENV, start_s3_server
    from tests.services.tracking import start_tracking

    code = str(Path(args.code).resolve())
    python = str(Path(code) / ".venv" / "bin" / "python")
    label = args.label or ("after" if Path(code) == REPO else "before")
    counts = [int(n) for n in args.models.split(",")]
    replica_counts = [int(n) for n in args.replicas.split(",")]
    rounds = args.rounds.split(",")
    work = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    s3 = start_s3_server(work / "s3")
    tracking_db = postgres.create_database("benchmlflow")
    tracking = None
    results = []
    try:
        bucket = s3.make_bucket("bench")
        tracking = start_tracking(work / "tracking", {
            "DRIFTLINE_MODE": "local", "TRACKING_BACKEND_URI": tracking_db,
            "TRACKING_ARTIFACTS_DESTINATION": f"s3://{bucket}/artifacts", **s3.env},
            bucket=bucket, db_url=tracking_db)
        os.environ.update(CHECKSUM_ENV)
        mlflow.set_tracking_uri(tracking.url)
        names = [f"bench-{i:04d}" for i in range(max(counts))]
        started = time.perf_counter()
        register_copies(mlflow.MlflowClient(tracking.url), names, workers=8)
        print(f"registered {len(names)} models in {time.perf_counter() - started:.0f} s", flush=True)
        slot = 1_000
        for count in counts:
            config = work / f"models-{count}.yaml"
            config.write_text("discover: false\nmodels:\n"
                              + "".join(f"  - name: {n}\n" for n in names[:count]))
            for replicas in replica_counts:
                if args.only and f"{count}x{replicas}" not in args.only.split(","):
                    continue
                monitor_db = postgres.create_database("benchmon")
                try:
                    subprocess.run([python, "-m", "monitor", "migrate"], cwd=code, check=True,
                                   env={**os.environ, "PYTHONPATH": code, "MONITOR_DATABASE_URL": monitor_db,
                                        "DRIFTLINE_MODE": "local"}, capture_output=True)
                    settings = {"DRIFTLINE_MODE": "local", "MONITOR_DATABASE_URL": monitor_db,
                                "MLFLOW_TRACKING_URI": tracking.url, "MONITOR_SCHEDULER": "false",
                                "MONITOR_SOURCE": "simulated", "MONITOR_CONFIG_FILE": str(config),
                                "MONITOR_SIMULATED_ROWS": str(args.rows),
                                # long enough that no round stops claiming at its deadline
                                "MONITOR_INTERVAL_SECONDS": "3600"}
                    group = None
                    last_warm = max((i for i, r in enumerate(rounds) if r == "warm"), default=-1)
                    for index, label_round in enumerate(rounds):
                        if label_round != "warm" and group is not None:
                            group.stop()
                            group = None
                        if group is None:
                            group = Replicas(python, code, settings, replicas, work)
                        slot += 1
                        load = os.getloadavg()[0]
                        profile = ""
                        if args.profile and label_round == "warm" and index == last_warm:
                            Path(args.profile).mkdir(parents=True, exist_ok=True)
                            profile = str(Path(args.profile).resolve() / f"round-{count}x{replicas}")
                        tracking_cpu0 = _tree_cpu(tracking.process.proc.pid)
                        seconds, answers = group.round(slot, profile)
                        tracking_cpu = _tree_cpu(tracking.process.proc.pid) - tracking_cpu0
                        load_end = os.getloadavg()
                        backlog = _backlog(monitor_db)
                        drained = time.perf_counter()
                        while _backlog(monitor_db) and time.perf_counter() - drained < args.drain_max:
                            time.sleep(0.5)
                        row = _row(count, replicas, label_round, seconds, answers, load, backlog)
                        row["load_average_end"] = [round(x, 2) for x in load_end]
                        row["tracking_cpu_seconds"] = round(tracking_cpu, 2)
                        row["outbox_drained_after_round_seconds"] = round(time.perf_counter() - drained, 1)
                        row["outbox_left"] = _backlog(monitor_db)
                        results.append(row)
                        print(_line(row), flush=True)
                    if group is not None:
                        group.stop()
                finally:
                    postgres.drop_database(monitor_db)
    finally:
        if tracking is not None:
            tracking.stop()
        s3.stop()
        postgres.drop_database(tracking_db)
    print(f"\n{label}: {args.rows:,} rows per batch; load average at each round's start")
    for row in results:
        print(_line(row))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"monitor_round_{label}.json"
    out.write_text(json.dumps({"code": code, "rows": args.rows, "cpus": os.cpu_count(), "rounds": results},
                              indent=1) + "\n")
    return 0


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        if current in stats:
            total += (int(stats[current][11]) + int(stats[current][12])) / tick
        todo += children.get(current, [])
    return total


def _backlog(db: str, attempts: int = 30) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db, poolclass=sa.pool.NullPool)
    try:
        for attempt in range(attempts):
            try:
                with engine.connect() as conn:
                    return int(conn.execute(sa.text(
                        "SELECT count(*) FROM monitoring_runs WHERE status = 'pending'")).scalar() or 0)
            except sa.exc.OperationalError:  # a PostgreSQL shared with other sessions: too many clients
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)
        raise AssertionError("not reached")
    finally:
        engine.dispose()


def _row(count: int, replicas: int, label: str, seconds: float, answers: list[dict], load: float,
         backlog: int) -> dict:
    evaluations = sum(a["evaluations"] for a in answers)
    shares = [a["evaluations"] for a in answers]
    return {"models": count, "replicas": replicas, "round": label, "seconds": round(seconds, 2),
            "seconds_per_model": round(seconds / max(count, 1), 4), "evaluations": evaluations,
            "shares": shares, "replica_seconds": [round(a["seconds"], 2) for a in answers],
            "cpu_seconds": round(sum(a["cpu"] for a in answers), 2),
            "cpu_seconds_per_model": round(sum(a["cpu"] for a in answers) / max(count, 1), 4),
            "peak_rss_mib": round(max(a["rss_mib"] for a in answers)),
            "statuses": sorted({s for a in answers for s in a["statuses"]}),
            "outbox_backlog": backlog, "load_average": round(load, 2)}


def _line(row: dict) -> str:
    return (f"{row['models']:>5} models x{row['replicas']} {row['round']:<8} {row['seconds']:>8.2f} s "
            f"{row['seconds_per_model']:>7.4f} s/model  cpu {row['cpu_seconds_per_model']:.4f} s/model  "
            f"cpu {row['cpu_seconds']:.1f} s (tracking {row.get('tracking_cpu_seconds')} s)  "
            f"shares {row['shares']}  rss {row['peak_rss_mib']} MiB  backlog {row['outbox_backlog']} "
            f"(empty {row.get('outbox_drained_after_round_seconds')} s on, {row.get('outbox_left')} left)  "
            f"load {row['load_average']} -> {row.get('load_average_end')}  {row['statuses']}")


if __name__ == "__main__":
    sys.exit(main())
