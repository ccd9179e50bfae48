"""BackupOrchestrator: the nightly cycle.

    lock -> preflight -> stop stacks (hub last) -> ONE recursive atomic snapshot
    -> start stacks (hub first) -> per dataset: read-only view at a stable path,
    borg create, prune, compact when due, remove the view -> destroy the snapshot -> report

Promises (each has a test):
- a failed preflight stops nothing;
- stacks that were running are started again on every way out of the stop window
  (error, SIGINT, SIGTERM); stacks that were stopped before stay stopped;
- one dataset's failure does not stop the others; views and the snapshot are removed anyway;
- only snapshots with the tool's prefix and views under VIEW_DATASET are ever destroyed.

The cycle is a package, by part: night (pure names and arithmetic), common (the run's state),
window (stop -> snapshot -> start), steps (each service's borg step and their merge), cleanup,
and cycle (BackupOrchestrator, which puts them together with the preflight).
"""

from management.cycles.backup.cycle import BackupOrchestrator
from management.cycles.backup.night import (
    APPEND_ONLY_NOTE,
    CRASH_CONSISTENT,
    change_baseline,
    compact_due,
    listing_record,
    mass_change,
    night_changes,
    restored_since,
    snapshot_name,
    start_order,
    stop_order,
)

__all__ = ["APPEND_ONLY_NOTE", "CRASH_CONSISTENT", "BackupOrchestrator", "change_baseline", "compact_due",
           "listing_record", "mass_change", "night_changes", "restored_since", "snapshot_name", "start_order",
           "stop_order"]
