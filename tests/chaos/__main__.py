"""`python -m tests.chaos --nights N --seed S` (make chaos NIGHTS=N SEED=S): the campaign on the
running lab (make lab-up). Exit 1 on a violation, with the step and the command that replays it."""

from __future__ import annotations

import argparse
import signal
import sys

from tests.chaos.campaign import main

parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
parser.add_argument("--nights", type=int, default=30, help="steps to run (default 30)")
parser.add_argument("--seed", type=int, default=1, help="the seed every step is drawn from (default 1)")
parser.add_argument("--minutes", type=float, help="stop after this many minutes (after a night that heals)")
parser.add_argument("--keep", action="store_true", help="leave the lab's stacks and datasets for a look afterwards")
args = parser.parse_args()
# `kill` (SIGTERM) stops a long campaign as Ctrl-C does: its lab cycle is torn down on the way out
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
sys.exit(main(args.nights, args.seed, keep=args.keep, minutes=args.minutes))
