"""The chaos campaign: many steps against the real lab, each an operation of the tool with zero
to two faults from a catalogue fired at random moments, and invariants checked after every
step (`make chaos NIGHTS=N SEED=S`; docs/reliability.md).

world.py sets the lab up for it (a hub and two spokes, repositories on a small filesystem of
their own, wrappers on PATH that count the tool's commands) and owns every outside effect a
fault has; faults.py is the catalogue; plan.py draws a step from the seed (pure); invariants.py
checks the host after a step; campaign.py runs the steps and prints the table.
"""
