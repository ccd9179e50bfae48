"""`doctor`: a read-only audit of the host against the design (spec 004 and docs/).

Each check is a small function of a `Host` (the settings, the Runner, and the paths it reads)
returning one `Check`: ok / warn / fail, a name, what it found, and for anything not ok the fix
(a command to run or a file to edit). The CLI prints them and exits 1 when any check fails.

What fails and what warns:
- fail: the host departs from the design in a way that puts data or access at risk: no
  userns-remap, unbounded container logs, the pool or a dataset not there, a disk of the pool not
  ONLINE or with read/write/checksum errors, a scrub that found errors, under 5 % free,
  password logins over ssh, no default-deny firewall, a readable .env or borg key, no
  nightly backup scheduled, a last good backup older than STALE_AFTER;
- warn: departs from the design without that risk (ssh on port 22, root login by key, the
  cache import at boot, under 20 % free, compose v1 only, no boot unit, a key not exported, a
  pool without redundancy, no scrub within 35 days or none scheduled),
  or the check cannot tell (a tool is missing, systemd is not running): it names what is missing.

Nothing here writes: every command is a query (`mutating=False`), every file is only read.

One module per thing checked: docker, pool (ZFS), access (ssh, firewall), secrets, backups
(schedule, last backup, coverage) and history (the local history, borg mounts); check.py holds
Check, Host and the shared helpers, report.py runs them all and renders the report. Adding a
check: a `check_*(host) -> Check` in the module of what it looks at, and a place in CHECKS.
"""
