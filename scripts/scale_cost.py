#!/usr/bin/env python3
"""What calls cost the PostgreSQL that several phone-agent instances share (docs/scaling.md).

Starts a throwaway PostgreSQL on 127.0.0.1, INSTANCES phone-agent processes on it (loopback
engines, a turn every TURN_FRAMES frames: a caller turn and the agent's answer each time), and
one `phone-agent loadgen` per instance with CALLS calls in all for SECONDS. It reads the
database's own counters before and after (pg_stat_database, pg_stat_wal) and each instance's CPU
time and resident memory, and prints the costs per call-minute as JSON.

Usage: scripts/scale_cost.py [--instances 3] [--calls 90] [--seconds 60] [--turn-frames 150]
                             [--binary target/release/phone-agent]
Standard library only; PostgreSQL's server binaries must be installed (scripts/test.sh does).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DATA_KEY = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
AUTH_TOKEN = "scale-cost-auth-token"
PUBLIC_HOST = "scale-cost.example"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        sys.exit("no PostgreSQL binaries (initdb): run scripts/test.sh once, or apt-get install postgresql")
    return versions[-1].parent


def as_postgres(argv):
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    def __init__(self, root):
        self.bin = pg_bin()
        self.dir = Path(root) / "pg"
        self.dir.mkdir()
        os.chmod(root, 0o755)  # the postgres user must reach its directory
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        data = self.dir / "data"
        subprocess.run(as_postgres([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL)
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(data), "-o", options,
                                    "-l", str(self.dir / "log"), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.data = data

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def query(self, sql):
        out = subprocess.run(as_postgres([str(self.bin / "psql"), "-h", str(self.dir), "-p", str(self.port),
                                          "-U", "postgres", "-At", "-F", " ", "-c", sql]),
                             check=True, capture_output=True, text=True).stdout
        return [line.split(" ") for line in out.strip().splitlines()]

    def stop(self):
        subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]),
                       stdout=subprocess.DEVNULL)

    def counters(self):
        [[commits, inserted, updated, deleted]] = self.query(
            "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
            "WHERE datname = 'postgres'")
        [[wal_records, wal_bytes]] = self.query("SELECT wal_records, wal_bytes FROM pg_stat_wal")
        [[events, turns]] = self.query(
            "SELECT (SELECT count(*) FROM call_events), (SELECT count(*) FROM call_turns)")
        return {name: int(value) for name, value in [
            ("commits", commits), ("rows_inserted", inserted), ("rows_updated", updated),
            ("rows_deleted", deleted), ("wal_records", wal_records), ("wal_bytes", wal_bytes),
            ("events", events), ("turns", turns)]}


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_ready(base, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"{base} not ready")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--calls", type=int, default=90, help="concurrent calls in all")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--turn-frames", type=int, default=150)
    parser.add_argument("--binary", default="target/release/phone-agent")
    args = parser.parse_args()
    binary = Path(args.binary).resolve()
    if not binary.exists():
        sys.exit(f"{binary} missing: cargo build --release")

    with tempfile.TemporaryDirectory() as root:
        postgres = Postgres(root)
        servers = []
        try:
            for n in range(args.instances):
                data = Path(root) / f"agent-{n}"
                data.mkdir()
                port = free_port()
                env = {
                    "PATH": os.environ["PATH"], "LISTEN_ADDR": f"127.0.0.1:{port}", "DATA_DIR": str(data),
                    "DATABASE_URL": postgres.url(), "DATA_KEY": DATA_KEY, "ENGINES": "loopback",
                    "LOOPBACK_TURN_FRAMES": str(args.turn_frames), "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                    "PUBLIC_HOST": PUBLIC_HOST, "ADMISSION_LAG_MS": "0", "RUST_LOG": "warn",
                }
                process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL,
                                           stderr=open(data / "log", "w"))
                servers.append((process, f"http://127.0.0.1:{port}"))
            for _, base in servers:
                wait_ready(base)
            before = postgres.counters()
            cpu_before = [cpu_seconds(process.pid) for process, _ in servers]
            started = time.time()
            share = [args.calls // args.instances + (1 if n < args.calls % args.instances else 0)
                     for n in range(args.instances)]
            loads = []
            for (process, base), calls in zip(servers, share):
                report = Path(root) / f"load-{process.pid}.json"
                loads.append((subprocess.Popen(
                    [str(binary), "loadgen", "--url", base, "--calls", str(calls),
                     "--duration", f"{args.seconds}s", "--turn-frames", str(args.turn_frames),
                     "--auth-token", AUTH_TOKEN, "--public-host", PUBLIC_HOST,
                     "--server-pid", str(process.pid), "--json", str(report)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), report))
            rss = [0.0] * len(servers)
            while any(load.poll() is None for load, _ in loads):
                rss = [max(peak, rss_mib(process.pid)) for peak, (process, _) in zip(rss, servers)]
                time.sleep(0.5)
            wall = time.time() - started
            time.sleep(3)  # the last calls' ends written
            cpu = [cpu_seconds(process.pid) - cpu0 for (process, _), cpu0 in zip(servers, cpu_before)]
            after = postgres.counters()
            reports = [json.loads(report.read_text()) for _, report in loads if report.exists()]
        finally:
            for process, _ in servers:
                process.terminate()
            for process, _ in servers:
                process.wait(timeout=60)
            postgres.stop()

    delta = {name: after[name] - before[name] for name in after}
    call_minutes = args.calls * args.seconds / 60
    result = {
        "instances": args.instances, "calls": args.calls, "seconds": args.seconds,
        "turn_every_s": args.turn_frames * 0.02, "wall_s": round(wall, 1),
        "totals": delta,
        "per_call_minute": {name: round(value / call_minutes, 1) for name, value in delta.items()},
        "notify_per_call_minute": round(delta["events"] / call_minutes, 1),
        "server_cpu_percent_per_call": round(sum(cpu) / wall / args.calls * 100, 3),
        "server_peak_rss_mib": [round(value, 1) for value in rss],
        "loadgen": [{"calls": r["calls"], "failed": r["failed"], "refused": r["refused"],
                     "p50_ms": r["latency_ms"]["p50"], "p99_ms": r["latency_ms"]["p99"]}
                    for report in reports for r in report["rounds"]],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
