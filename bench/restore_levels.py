#!/usr/bin/env python3
"""make bench-restore: how long each restore level takes per service, on the lab's real apps,
printed as one markdown table (docs/restore.md quotes it).

    restore_levels.py [--pg-scale 10] [--pages 300] [--keys 100000] [--runs 1]

The stacks are the lab tests' own (tests/lab): PostgreSQL 15 with a pgbench database of
--pg-scale (stop mode), Fossil with --pages wiki pages in its SQLite repository (live), Redis with
--keys keys in its append-only file (stop mode), a Caddy hub in front. One full backup night, then
per service (median over --runs): `drill` (the archive extracted and compared byte for byte with
its snapshot), `drill --boot` (the restored stack started isolated, healthchecks and probe),
`check-repos --repository-only`, `check-repos --verify-data` and `restore` in place. Needs root and
the lab (`tests/lab/lab.sh up`); everything it makes carries a unique prefix and is removed at the
end. Nothing is asserted: this prints what it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import lab_from_env  # noqa: E402
from tests.lab.conftest import build_cycle, teardown_cycle  # noqa: E402
from tests.lab.envfile import run_cli  # noqa: E402
from tests.lab.test_apps_lab import REPO, apps  # noqa: E402
from tests.lab.test_postgres_lab import PG_GID, PG_UID, pg_stack, wait_ready  # noqa: E402

SERVICES = ("pg", "notes", "cache")


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def cli(cyc, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    r = run_cli(cyc.env_path, *args, timeout=3600)
    took = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return took, r


def exec_(container: str, *argv: str) -> None:
    subprocess.run(["docker", "exec", container, *argv], check=True, capture_output=True, timeout=1800)


def seed(cyc, a) -> None:
    pg = f"{cyc.prefix}pg"
    wait_ready(pg)
    exec_(pg, "createdb", "-h", "/tmp", "-U", "postgres", "bench")
    exec_(pg, "pgbench", "-h", "/tmp", "-U", "postgres", "-i", "-s", str(a.pg_scale), "-q", "bench")
    exec_(f"{cyc.prefix}notes", "sh", "-c", f"for i in $(seq {a.pages}); do "
          f"echo \"page $i\" | fossil wiki create P-$i -R {REPO} >/dev/null; done")
    exec_(f"{cyc.prefix}cache", "redis-benchmark", "-q", "-t", "set", "-n", str(a.keys), "-r", str(a.keys), "-d", "100")


def measure(cyc) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {s: {} for s in SERVICES}
    archives: dict[str, str] = {}
    _, r = cli(cyc, "drill", *SERVICES, "--no-boot", "--json")
    for s in json.loads(r.stdout)["services"]:
        out[s["service"]].update(drill=s["duration"], bytes=s["bytes"], entries=s["entries"])
        archives[s["service"]] = s["archive"]
    _, r = cli(cyc, "drill", *SERVICES, "--boot", "--json")
    for s in json.loads(r.stdout)["services"]:
        out[s["service"]]["boot"] = s["boot_duration"]
    for mode, flag in (("repo", "--repository-only"), ("verify", "--verify-data")):
        _, r = cli(cyc, "check-repos", *SERVICES, flag)
        for line in r.stdout.splitlines():  # "<service>: OK (<mode>, 1.2s)"
            name, _, rest = line.partition(": OK (")
            if name in out and rest.endswith("s)"):
                out[name][mode] = float(rest.rsplit(", ", 1)[1][:-2])
    for s in SERVICES:
        out[s]["restore"], _ = cli(cyc, "restore", "--yes", s, archives[s])
    return out


def table(runs: list[dict[str, dict[str, float]]], night: float, a) -> str:
    what = {"pg": f"PostgreSQL 15, pgbench scale {a.pg_scale} (stop)",
            "notes": f"Fossil/SQLite, {a.pages} pages (live)", "cache": f"Redis AOF, {a.keys} keys (stop)"}
    cols = [("drill", "bytes equal (`make drill`)"), ("boot", "the service boots (`BOOT=1`)"),
            ("repo", "repository intact (`check-repos`)"), ("verify", "every chunk read (`--verify-data`)"),
            ("restore", "restore in place")]
    lines = [f"Full backup night of the three stacks and the hub: {night:.1f} s. "
             f"Medians of {len(runs)} run(s), seconds.",
             "", "| service | data | " + " | ".join(c for _, c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for s in SERVICES:
        size = f"{runs[0][s]['bytes'] / 1e6:.1f} MB, {int(runs[0][s]['entries'])} entries"
        vals = [statistics.median(r[s].get(k, float("nan")) for r in runs) for k, _ in cols]
        lines.append(f"| {what[s]} | {size} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg-scale", type=int, default=10)
    ap.add_argument("--pages", type=int, default=300)
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    lab = lab_from_env()

    def rewrite(cyc, lab) -> None:
        apps(cyc, lab)
        pg_stack(False)(cyc, lab)

    with tempfile.TemporaryDirectory(prefix="bench-restore-") as tmp:
        log("starting the stacks")
        cyc = build_cycle(lab, Path(tmp), spokes=["notes", "cache"], rewrite=rewrite,
                          paths=["pg/pgdata:REMAPPED_PG_UID:REMAPPED_PGGROUP_UID"],
                          extra={"REMAPPED_PG_UID": str(PG_UID), "REMAPPED_PGGROUP_UID": str(PG_GID),
                                 "HEALTH_TIMEOUT": "300"})
        try:
            log("seeding PostgreSQL, Fossil and Redis")
            seed(cyc, a)
            log("the backup night")
            night, _ = cli(cyc, "backup")
            runs = []
            for i in range(a.runs):
                log(f"run {i + 1}/{a.runs}: drill, boot drill, checks, restores")
                runs.append(measure(cyc))
        finally:
            teardown_cycle(cyc)
            subprocess.run(["docker", "network", "rm", f"{cyc.prefix}pg_net"], capture_output=True, timeout=60)
    print(table(runs, night, a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
