#!/usr/bin/env python3
"""make bench-scale-vm: the quiet night's cost as files grow, on OpenZFS (issue 38, "the VM, a
reduced size"), in the VM lab's Debian 13 guest (tests/vm: systemd, OpenZFS 2.3, docker, borg).

    scale_vm.py [--files 1000,20000] [--kb-per-file 4] [--quiet-runs 2]

The guest is set up as README tells a new user (the VM lab's own steps: make install, .env,
setup-pool, setup-storage, docker-up of a hub and two spokes), then for each size:
  N files written into spoke alpha's dataset (mostly small, 1 in 100 of 64 KB), then a night
  that backs them up, then --quiet-runs nights with nothing changed. Each night's wall, its
  window (stop issued .. every stack healthy again) and every `zfs` and `borg` process it ran
  (counted by shims first on PATH) are printed. The goal: a quiet night minus its window does
  not grow with the files (OpenZFS answers `written@` of the kept snapshot: no view, no walk, no
  borg process for an unchanged dataset).

Under qemu's TCG (no KVM here) the guest runs many times slower than a machine: the seconds are
the emulator's; the growth from the smallest size to the largest, and the process counts, are
the point. Needs root, qemu and the VM image (built or reused: `make vm-image`); nothing of the
host lab is touched. The guest is thrown away at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.vm import machine  # noqa: E402
from tests.vm.test_vm import (  # noqa: E402
    BASE,
    MAKE,
    SPOKES,
    Steps,
    create_pool,
    env_text,
    install,
    prepare_host,
    push_project,
    push_services,
    run_json,
)

SERVICE = "alpha"
OTHER = "beta"  # the other spoke: a few files all along, measured in the same nights
APP_UID = 100999
SHIMS = "/root/shims"


def log(msg: str) -> None:
    print(f"bench-scale-vm: {msg}", file=sys.stderr, flush=True)


def setup(vm) -> None:
    step = Steps(vm)
    # the guards are off: a night that adds 19 times the files a dataset had is a mass change
    # by design, and this bench adds them to measure the nights after
    install(step, env_text(CHANGE_GUARD_PERCENT="0", PRUNE_GUARD_SHRINK="0"))
    create_pool(step)
    push_services(vm)
    prepare_host(step)
    for spoke in SPOKES:  # the healthcheck fetches / : an index page
        index = BASE / spoke / "data" / "index.html"
        vm.ssh(f"echo '<h1>{spoke}</h1>' > {index} && chown {APP_UID}:{APP_UID} {index}")
    step("make docker-up", f"{MAKE} docker-up")
    for program in ("borg", "zfs"):  # every borg and zfs process a night runs, counted
        shim = (f'#!/bin/sh\necho "{program} $1" >> {SHIMS}/calls\n'
                f'PATH=${{PATH#{SHIMS}:}} exec {program} "$@"\n')
        vm.ssh(f"mkdir -p {SHIMS} && cat > {SHIMS}/{program} && chmod 755 {SHIMS}/{program}", input=shim)
    log(f"guest set up: {step.rounded()}")


def write_files(vm, n: int, kb_per_file: int, start: int) -> None:
    """Files start .. start+n-1 in alpha's dataset, written in the guest (its own Python)."""
    script = f"""
import os, random
rng = random.Random({start})
root = "{BASE / SERVICE / 'data' / 'library'}"
for i in range({start}, {start + n}):
    d = os.path.join(root, f"d{{i // 1000:03d}}")
    if i % 1000 == 0 or i == {start}:
        os.makedirs(d, exist_ok=True)
        os.chown(d, {APP_UID}, {APP_UID})
    size = 65536 if i % 100 == 0 else rng.randint(1, 2 * {kb_per_file} * 1024)
    path = os.path.join(d, f"f{{i:06d}}.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    os.chown(path, {APP_UID}, {APP_UID})  # the new files only: a chown -R would touch every ctime
os.chown(root, {APP_UID}, {APP_UID})
"""
    vm.ssh("python3 - && sync", input=script, timeout=3600)


def night(vm) -> dict:
    vm.ssh(f"rm -f {SHIMS}/calls")
    started = time.monotonic()
    report = run_json(vm, f"export PATH={SHIMS}:$PATH; {MAKE} backup-all JSON=1", timeout=7200)
    wall = time.monotonic() - started
    calls = vm.ssh(f"cat {SHIMS}/calls 2>/dev/null || true").stdout.splitlines()
    if not report.get("ok"):
        raise SystemExit(f"bench-scale-vm: a night failed: {report}")
    return {"wall": wall, "window": report.get("downtime") or 0.0,
            "zfs": sum(c.startswith("zfs ") for c in calls), "borg": sum(c.startswith("borg ") for c in calls),
            "results": {d["service"]: d["result"] for d in report["datasets"]},
            "seconds": {d["service"]: d.get("duration") or 0.0 for d in report["datasets"]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", default="1000,20000", help="files in alpha at each size, comma-separated")
    ap.add_argument("--kb-per-file", type=int, default=4, help="average size of the small files (KB)")
    ap.add_argument("--quiet-runs", type=int, default=2, help="quiet nights at each size (the median is taken)")
    args = ap.parse_args()
    sizes = [int(x) for x in args.files.split(",")]
    started = time.monotonic()
    image = machine.build_image()
    vm = machine.VM(image)
    log(f"booting the guest ({vm.accel}); work dir {vm.work}")
    rows = []
    try:
        vm.boot()
        push_project(vm)
        setup(vm)
        first = night(vm)
        log(f"the first night: {first}")
        written = 0
        for n in sizes:
            log(f"{n} files: writing {n - written} more into {SERVICE}")
            write_files(vm, n - written, args.kb_per_file, written)
            written = n
            backed = night(vm)
            if backed["results"].get(SERVICE) not in ("ok", "warning"):
                raise SystemExit(f"bench-scale-vm: the night after the files were written: {backed}")
            quiet = []
            for i in range(args.quiet_runs):
                log(f"{n} files: quiet night {i + 1}/{args.quiet_runs}")
                quiet.append(night(vm))
                if any(r != "unchanged" for r in quiet[-1]["results"].values()):
                    log(f"not every dataset unchanged: {quiet[-1]['results']}")
            rows.append((n, backed, quiet))
    finally:
        vm.down()
    print(f"### The quiet night on OpenZFS as files grow (Debian 13 guest, {vm.accel.upper()}; seconds: the "
          f"emulator's; median of {args.quiet_runs} quiet nights)\n")
    print(f"| files in {SERVICE} | the night that backs them up | its borg processes | quiet night | its window "
          f"| quiet night − window | {SERVICE}'s own time, unchanged | {OTHER}'s (a few files), same nights "
          "| zfs processes | borg processes | results |")
    print("|" + "---|" * 11)
    extra, own = {}, {}
    for n, backed, quiet in rows:
        wall = statistics.median(q["wall"] for q in quiet)
        window = statistics.median(q["window"] for q in quiet)
        extra[n] = statistics.median(q["wall"] - q["window"] for q in quiet)
        mine = statistics.median(q["seconds"].get(SERVICE, 0.0) for q in quiet)
        other = statistics.median(q["seconds"].get(OTHER, 0.0) for q in quiet)
        own[n] = statistics.median(q["seconds"].get(SERVICE, 0.0) - q["seconds"].get(OTHER, 0.0) for q in quiet)
        zfs = "/".join(str(q["zfs"]) for q in quiet)
        borg = "/".join(str(q["borg"]) for q in quiet)
        results = ", ".join(f"{k} {v}" for k, v in sorted(quiet[-1]["results"].items()))
        print(f"| {n:,} | {backed['wall']:.1f} | {backed['borg']} | {wall:.1f} | {window:.1f} | {extra[n]:.1f} "
              f"| {mine:.2f} | {other:.2f} | {zfs} | {borg} | {results} |")
    lo, hi = sizes[0], sizes[-1]
    no_borg = all(q["borg"] == 0 for _, _, quiet in rows for q in quiet)
    print()
    print("| target | measured | goal | result |")
    print("|---|---|---|---|")
    print(f"| an unchanged dataset of {hi:,} files, its own time beyond a dataset of a few files in the same night "
          f"| {own[hi]:+.2f} s ({own[lo]:+.2f} s at {lo:,}) | ≤ 0.5 s | {'PASS' if own[hi] <= 0.5 else 'MISS'} |")
    print(f"| quiet night − window, {lo:,} → {hi:,} files | {extra[lo]:.1f} s → {extra[hi]:.1f} s "
          f"| ≤ 0.5 s at {hi:,} files (here: the emulator's seconds; the fixed part is the floor) "
          f"| {'PASS' if extra[hi] <= 0.5 else 'MISS'} |")
    print(f"| borg processes of a quiet night | {'none' if no_borg else 'some'} | none at any size "
          f"| {'PASS' if no_borg else 'MISS'} |")
    print(f"\nbench-scale-vm: {time.monotonic() - started:.0f} s in all", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
