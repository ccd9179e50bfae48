"""The settings table: every setting declared once (`SETTINGS`), in sections, in the order of
.env.example. Adding a setting: one `Setting(...)` line here, inside the `_section` it belongs
to, then `make env-example`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from management.config.kinds import (
    DEFAULT_RETENTION,
    LARGEST_ID,
    SERVICE_NAME_RE,
    SNAPSHOT_PREFIX_RE,
    SWITCH,
    UID_KEY_RE,
    AbsPath,
    AddressPool,
    BorgRepo,
    Choice,
    Dataset,
    Derived,
    Int,
    Lines,
    NotifyUrls,
    Retention,
    Schedule,
    Setting,
    Text,
    Uid,
    Url,
    VolumePath,
    show_retention,
)
from management.text import pool_of


def _below(key: str, name: str) -> Derived:
    """The default `<key's path>/<name>`."""
    return Derived(f"{key}/{name}", (key,), lambda directory: directory / name)



def _show_retention_overrides(overrides: dict[str, dict[str, str]]) -> str:
    return "; ".join(f"{service}:{show_retention(keep)}" for service, keep in overrides.items())


def _show_volume_paths(paths: tuple[VolumePath, ...]) -> str:
    return "; ".join(f"{v.relative} -> {v.uid}:{v.gid} ({v.uid_key})" for v in paths)



def _section(title: str, *settings: Setting) -> tuple[Setting, ...]:
    """The settings under one heading of .env.example, each told its heading."""
    return tuple(dataclasses.replace(s, section=title) for s in settings)


SETTINGS: tuple[Setting, ...] = (
    *_section(
        "General",
        Setting("ADMIN_USER", Text(), "Your main non-root user.", required=True, example="runner",
                note="Paths below usually live in its home."),
        Setting("MANAGEMENT_DIR", AbsPath(strict=True), "Where this project (Makefile, management/) lives.",
                required=True, example="/home/runner/management",
                note="On the VM; borg_keys/ and borg_excludes.txt are kept there too."),
        Setting("VENV_DIR", AbsPath(strict=True), "The virtualenv `make install` creates and uses.", required=True,
                example="/home/runner/management/.venv", note="The Makefile runs the tool with its python."),
        Setting("SERVICES_DIR", AbsPath(strict=True), "One folder per Docker Compose stack.", required=True,
                example="/home/runner/services", note="Each holds its compose.yaml (or docker-compose.yml)."),
        Setting("HUB_SERVICE", Text(SERVICE_NAME_RE, "is not a valid service folder name"),
                "The reverse-proxy stack: started first, stopped last.", default="reverseproxy",
                note="Its folder name in SERVICES_DIR (in the examples: the Caddy reverse proxy)."),
    ),
    *_section(
        "Storage (ZFS)",
        Setting("ZFS_PARENT_DATASET", Dataset(pool_ok=False), "Parent dataset; one child dataset per service.",
                required=True, example="datapool/services", note="For example datapool/services/git."),
        Setting("ZFS_BASE_MOUNTPOINT", AbsPath(strict=True), "Where the parent dataset is mounted.", required=True,
                example="/datapool/services", note="Service data lives in ZFS_BASE_MOUNTPOINT/<service>."),
        Setting("SNAPSHOT_PREFIX",
                Text(SNAPSHOT_PREFIX_RE, "must be a letter followed by letters, digits, '_' or '-' (max 32)"),
                "Snapshots the tool takes (and the only ones it destroys) are <prefix>-<timestamp>.",
                default="orchestrator"),
        Setting("VIEW_DATASET", Dataset(), "Read-only clones borg reads from; must be outside ZFS_PARENT_DATASET.",
                default=Derived("<pool>/orchestrator-views", ("ZFS_PARENT_DATASET",),
                                lambda parent: pool_of(parent) + "/orchestrator-views"),
                note="Each is a clone of a snapshot, mounted at a stable path (VIEW_MOUNTPOINT) so that borg's "
                     "files cache works."),
        Setting("VIEW_MOUNTPOINT", AbsPath(), "Where the views are mounted (stable, for borg's files cache).",
                default=Path("/run/orchestrator/views")),
    ),
    *_section(
        "Storage & permissions (userns-remap)",
        Setting("DOCKER_REMAP_USER", Text(), "Host user docker maps container users to.", default="dockeruser"),
        Setting("SUBID_START", Int(1, LARGEST_ID), "First host id of that user's subordinate range.",
                default=100000),
        Setting("SUBID_COUNT", Int(1, LARGEST_ID), "Size of that user's subordinate id range.", default=65536),
        Setting("DOCKER_DAEMON_JSON", AbsPath(), "The daemon.json setup-storage merges userns-remap into.",
                default=Path("/etc/docker/daemon.json")),
        Setting("DOCKER_ADDRESS_POOL", AddressPool(),
                "Where docker takes each stack's network from (daemon.json default-address-pools).",
                default=("172.16.0.0/12", 24),
                note="BASE/PREFIX:SIZE. Docker's own pools hold about 31 networks, and every stack "
                     "needs one: the 32nd stack would not start. This one holds 4096. Pick a range "
                     "your LAN does not use; `off` leaves Docker's pools. setup-storage sets it only "
                     "when daemon.json has no default-address-pools of its own."),
        Setting("SUBUID_FILE", AbsPath(), "Where setup-storage adds the subordinate uid range.",
                default=Path("/etc/subuid")),
        Setting("SUBGID_FILE", AbsPath(), "Where setup-storage adds the subordinate gid range.",
                default=Path("/etc/subgid")),
        Setting("DOCKER_RESTART_COMMAND", Text(),
                "Restarts docker after daemon.json changed; empty: systemctl or service.", default="",
                sample="systemctl restart docker",
                note="That is `systemctl restart docker`, or `service docker restart` without systemd."),
        Setting("REMAPPED_*_UID", Uid(), "Host ids (container id + SUBID_START) the volume list names.",
                family=UID_KEY_RE, attr="remapped_uids",
                example={"REMAPPED_ROOT_UID": "100000", "REMAPPED_POSTGRES_UID": "100999",
                         "REMAPPED_NODE_UID": "101000", "REMAPPED_GITEA_UID": "101000",
                         "REMAPPED_REDIS_UID": "100999"},
                note="One key REMAPPED_<NAME>_UID per owner: e.g. postgres (999) inside the container is 100999 "
                     "on the host."),
        Setting("SERVICE_VOLUME_PATHS_AND_OWNERS", Lines(tuple[VolumePath, ...], render=_show_volume_paths),
                "One service/path:UID_KEY[:GID_KEY] per line; the first component is the service.",
                required=True, attr="volume_paths",
                example="\n".join(("reverseproxy/caddy_data:REMAPPED_ROOT_UID",
                                   "reverseproxy/caddy_config:REMAPPED_ROOT_UID",
                                   "git/gitea-data:REMAPPED_GITEA_UID",
                                   "git/gitea-config:REMAPPED_GITEA_UID",
                                   "git/gitea-postgres:REMAPPED_POSTGRES_UID",
                                   "photo/immich-library:REMAPPED_NODE_UID",
                                   "photo/immich-postgres:REMAPPED_POSTGRES_UID",
                                   "photo/immich-model-cache:REMAPPED_NODE_UID",
                                   "status/data:REMAPPED_ROOT_UID")),
                note="One line per persistent directory, its path relative to ZFS_BASE_MOUNTPOINT. The service "
                     "becomes the dataset ZFS_PARENT_DATASET/<service>, the borg repository "
                     "BORG_REPO_BASE_PATH/<service> and must match its folder in SERVICES_DIR. Without GID_KEY "
                     "the group id equals the user id. Lines starting with # are ignored."),
    ),
    *_section(
        "Backups (Borg)",
        Setting("BORG_REPO_BASE_PATH", BorgRepo(), "One repository per service below this: a path or ssh://.",
                required=True, example="ssh://borg@backup.homelab.lan:22/./repos",
                note="A path is local; a remote one looks like ssh://user@host:port/path."),
        Setting("BORG_PASSPHRASE", Text(strip=False), "The repositories' passphrase (or one of the next two).",
                secret=True, example="change-me-to-a-long-random-passphrase",
                note="Give exactly one of BORG_PASSPHRASE, BORG_PASSCOMMAND and BORG_PASSPHRASE_FILE. It reaches "
                     "borg through the environment only, never the command line. Keep this file chmod 600."),
        Setting("BORG_PASSCOMMAND", Text(), "A command that prints the passphrase.",
                sample="cat /root/.borg-passphrase"),
        Setting("BORG_PASSPHRASE_FILE", AbsPath(), "A file that holds the passphrase (chmod 600).",
                sample="/root/.borg-passphrase"),
        Setting("BORG_RSH", Text(), "ssh command borg uses for ssh:// repositories.",
                example="ssh -i /home/runner/.ssh/id_borg -o BatchMode=yes", note="Its key must be readable by root."),
        Setting("BORG_BASE_DIR", AbsPath(), "Borg's cache, config and security dirs.",
                default=_below("MANAGEMENT_DIR", ".borg"),
                note="Kept out of a user's home, so that sudo leaves no root-owned files there."),
        Setting("BORG_KEYS_DIR", AbsPath(), "Exported repository keys, written 0600 on init.",
                default=_below("MANAGEMENT_DIR", "borg_keys")),
        Setting("BORG_EXCLUDES_FILE", AbsPath(), "Patterns borg skips.",
                default=_below("MANAGEMENT_DIR", "borg_excludes.txt")),
        Setting("BORG_COMPRESSION", Text(), "borg create --compression.", default="zstd,3"),
        Setting("BORG_PARALLEL", Int(1, 16), "Datasets borg backs up at once.", default=1,
                note="1: one after another."),
        Setting("BORG_RETENTION", Retention(), "Retention for every service (daily=N,weekly=N,...).",
                default=DEFAULT_RETENTION, attr="retention_default"),
        Setting("BORG_RETENTION_OVERRIDES",
                Lines(dict[str, dict[str, str]], hashable=False, render=_show_retention_overrides),
                "Per-service retention, one service:daily=N,... per line.", default={}, attr="retention_overrides",
                example="git:daily=365,weekly=52,monthly=24\nphoto:daily=90",
                note="What a line leaves out comes from BORG_RETENTION."),
        Setting("PRUNE_GUARD_SHRINK", Int(0, 99), "Hold a service's prune when its new archive has this many "
                "percent fewer bytes or files than the one before (or is empty after a non-empty one); 0: off.",
                default=50,
                note="A dataset emptied by a mistake, ransomware or a bad migration is still backed up, but no "
                     "archive is pruned until `make release-prune SERVICE_NAME=...` says the change was meant."),
        Setting("CHANGE_GUARD_PERCENT", Int(0, 100), "Hold a service's prune, and keep the local snapshot from "
                "before, when a night modified or deleted more than this many percent of its files; 0: this rule "
                "off.", default=50,
                note="Ransomware and runaway apps rewrite files in place (same count, same size): the prune guard "
                     "does not see that, this does. A stack that rewrites everything on purpose says so in its "
                     "compose file (x-orchestrator: {mass-change: {limit: 90, reason: ...}}, docs/backup.md)."),
        Setting("CHANGE_GUARD_FACTOR", Int(0, 1000), "Also hold when a night modified or deleted more than this "
                "many times the most of its last 30 nights (at least CHANGE_GUARD_MIN_FILES); 0: this rule off.",
                default=10),
        Setting("CHANGE_GUARD_MIN_FILES", Int(1, 100_000_000), "Fewer modified or deleted files than this never "
                "trip the mass-change guard.", default=100,
                note="Keeps a small service (a few config files rewritten at once) from tripping it."),
        Setting("KEEP_LAST_SNAPSHOT", SWITCH, "Keep each dataset's last backed-up snapshot until the next backup.",
                default=1,
                note="1: on, 0: off. A local restore point and cheap change detection, for the space of blocks "
                     "changed since."),
        Setting("SKIP_UNCHANGED", SWITCH, "No borg run for a dataset with nothing written since its last backup.",
                default=1,
                note="Such a dataset is reported `unchanged` with the archive that holds it. Needs "
                     "KEEP_LAST_SNAPSHOT."),
        Setting("BORG_COMPACT_EVERY_DAYS", Int(0, 365),
                "borg compact at most every N days per repository (0: every run).", default=7),
        Setting("BORG_APPEND_ONLY", SWITCH, "This machine's key is append-only on the backup server "
                "(`make authorized-keys`): its nightly run never prunes or compacts.", default=0,
                note="1: a trusted machine holding the full-access key runs `make prune-trusted` instead, so a "
                     "compromised VM cannot delete the history (docs/security.md). 0: the night prunes and "
                     "compacts itself."),
    ),
    *_section(
        "Compose",
        Setting("COMPOSE_PARALLEL", Int(1, 64), "Stacks handled at once by docker-up/stop/start/down.", default=32,
                note="Keep it at least the number of stacks: the backup window is one wave of stops and one of "
                     "starts, a second wave doubles it. Each stack at work is one compose process (~45 MB, "
                     "mostly waiting for its containers); lower it only on a host short of memory."),
        Setting("HEALTH_TIMEOUT", Int(0, 3600), "Seconds to wait for healthchecks after up/start.", default=120,
                note="Only containers with a healthcheck are waited for."),
        Setting("STORAGE_WAIT", Int(0, 3600), "Seconds docker waits at boot for the pool and every dataset below "
                "ZFS_PARENT_DATASET to be mounted (a disk that appears late is imported by scanning); past that, "
                "docker is held back. 0: docker is only ordered after the ZFS mounts (make install-autostart).",
                default=300,
                note="Holding docker back keeps containers off empty mountpoints. Takes effect with "
                     "`make install-autostart`."),
        Setting("STOP_TIMEOUT", Int(1, 3600), "Upper bound, in seconds, on stopping one whole stack.", default=120,
                note="Each service gets its own declared stop_grace_period (compose's default: 10 s) before it is "
                     "killed; the tool never shortens it. Past this bound the tool stops waiting and reports the "
                     "stack; check-stacks flags a stop_grace_period that would not fit."),
        Setting("HOOK_TIMEOUT", Int(1, 3600), "Seconds a stack's before-snapshot command may take.", default=60,
                note="The x-orchestrator before-snapshot command (docs/backup.md); past it that stack is stopped "
                     "for the snapshot instead."),
        Setting("COMPOSE_COMMAND", Choice(("auto", "v2", "v1")), "Which compose runs the stacks: auto, v2 or v1.",
                default="auto", note="auto: `docker compose` when installed, else `docker-compose`, as v1 or v2 "
                                     "by its version (Debian 13's docker-compose is v2)."),
    ),
    *_section(
        "Image updates (make outdated / update / rollback; docs/updates.md)",
        Setting("UPDATE_SNAPSHOTS_KEEP", Int(1, 100), "Pre-update snapshots kept per stack.", default=3,
                note="With the old images, for `make rollback`."),
        Setting("UPDATE_SETTLE_SECONDS", Int(0, 600),
                "Seconds a service without healthcheck must stay up after update.", default=10,
                note="Up without a restart, for the update to count as healthy."),
        Setting("UPDATE_SCHEDULE", Schedule(), "Cron fields for a scheduled `update --yes`; empty: none.",
                default="", sample="0 5 * * 0", note="Installed by `make install-cron`."),
        Setting("UPDATE_PUSH_URL", Url(), "Push URL for update runs (start / success / fail).", secret=True,
                sample="https://hc-ping.com/your-other-uuid", note="Like PUSH_URL for backups. A secret."),
    ),
    *_section(
        "Local history and one file back (make versions / restore-path / mount; docs/restore.md)",
        Setting("SNAPSHOT_RETENTION", Retention(off=True), "Which nightly snapshots stay on the pool as local "
                "history (daily=N,weekly=N,..., as BORG_RETENTION); off: none but the last backed-up one.",
                default={"daily": "7"},
                note="`make versions` and `make restore-path` read them in seconds, with the service running. "
                     "Only snapshots this tool made are thinned; the one SKIP_UNCHANGED relies on always stays."),
        Setting("SNAPSHOT_SCHEDULE", Schedule(off=True), "Cron fields for snapshots between nights (nothing is "
                "stopped: crash-consistent); empty or off: none.", default="", sample="0 9-21/3 * * *",
                note="Installed by `make install-cron`; thinned by SNAPSHOT_RETENTION with the nightly ones."),
        Setting("SNAPSHOT_SPACE_WARN", Int(1, 100), "doctor warns when the local history holds more than this "
                "percent of the pool.", default=20,
                note="When the pool itself is nearly full (90%), the night removes the oldest history "
                     "snapshots first and says so."),
        Setting("MOUNT_DIR", AbsPath(), "Where `make mount` mounts a service's repository (MOUNT_DIR/<service>).",
                default=Path("/mnt/orchestrator"),
                note="Read-only. borg holds the repository's lock while it is mounted: the night fails that "
                     "service, naming the mount, until `make umount`."),
    ),
    *_section(
        "Restore drills (make drill; docs/restore.md)",
        Setting("DRILL_SCHEDULE", Schedule(off=True), "Cron fields for the restore drill; empty or off: none.",
                default="0 5 * * 0",
                note="Installed by `make install-cron`: each service's latest archive is extracted to scratch space "
                     "and compared with the snapshot it was made from."),
        Setting("DRILL_BOOT", SWITCH, "The drill also boots each restored stack, isolated, and waits for its "
                "healthchecks (make drill BOOT=1 does it once).", default=0,
                note="A throwaway stack from the archived stack folder: its own project and network (internal, "
                     "no ports), binds re-pointed to the restored copy, local images only. docs/restore.md."),
        Setting("CHECK_SCHEDULE", Schedule(off=True), "Cron fields for the repository check; empty or off: none.",
                default="0 4 1 * *",
                note="Installed by `make install-cron`: `borg check --repository-only` of every repository "
                     "(on the server for ssh:// ones), monthly by default; damage a drill of the latest archive "
                     "cannot see fails it, naming the service."),
        Setting("CHECK_VERIFY_DATA", SWITCH, "The scheduled check also reads and verifies every chunk "
                "(--verify-data): slow, all data crosses the network.", default=0),
        Setting("DRILL_DIR", AbsPath(), "Where drills extract to; empty: a temporary dataset beside the views.",
                sample="/var/tmp/orchestrator-drill",
                note="Never inside a service dataset. The temporary dataset is removed afterwards."),
    ),
    *_section(
        "Running",
        Setting("COMMAND_TIMEOUT", Int(10, 7 * 24 * 3600), "Seconds any single zfs/docker command may take.",
                default=600),
        Setting("BORG_TIMEOUT", Int(60, 7 * 24 * 3600), "Seconds any single borg command may take.",
                default=6 * 3600),
        Setting("PROGRESS_INTERVAL", Int(1, 24 * 3600), "Seconds between progress lines of borg work when not on a "
                "terminal (cron, --json).", default=300, note="On a terminal the progress is live."),
        Setting("LOCK_FILE", AbsPath(), "Keeps two runs from overlapping.",
                default=Path("/run/lock/orchestrator.lock")),
        Setting("STATE_DIR", AbsPath(), "Where run state is kept.", default=Path("/var/lib/orchestrator")),
    ),
    *_section(
        "Monitoring (optional)",
        Setting("PUSH_URL", Url(), "Push URL for backup runs; /start and /fail are appended.", secret=True,
                sample="https://hc-ping.com/your-uuid",
                note="Uptime Kuma / healthchecks.io style. A secret: never printed."),
        Setting("PROMETHEUS_TEXTFILE", AbsPath(), "node_exporter textfile collector output.",
                sample="/var/lib/node_exporter/textfile_collector/orchestrator.prom"),
        Setting("STATUS_PAGE_DIR", AbsPath(), "Folder every run writes index.html into: the static status page.",
                sample="/srv/status-page",
                note="One self-contained HTML file (verdict per service, the last 30 nights charted); the hub "
                     "serves it read-only (docs/monitoring.md). Empty: no page."),
        Setting("NOTIFY_URLS", NotifyUrls(), "Apprise URLs notified after backup, update and drill runs.",
                secret=True, default=(), sample="ntfys://ntfy.sh/your-topic tgram://your-bot-token/your-chat-id",
                note="ntfy, Gotify, Telegram, mailto, Discord, json://...; several separated by spaces. Secrets: "
                     "never printed. See docs/monitoring.md."),
        Setting("NOTIFY_ON", Choice(("failure", "always")), "When to notify: failure (default) or always.",
                default="failure", note="failure: only after a run that failed."),
        Setting("STALE_AFTER", Int(1, 8760), "Hours after a service's last good backup before status and doctor "
                "call it stale.", default=36,
                note="With the nightly backup, 36 h makes one missed or failed night show by the next afternoon."),
    ),
)
