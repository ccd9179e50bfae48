"""An image update whose new version migrates a real PostgreSQL schema and then fails its health
check is rolled back with its data: the old schema, the old rows, the old image.

The stack is the shape upstream apps ship: `db` (PostgreSQL 15 from Debian's packages, pushed to the
lab's registry and pinned) and `web`, an app that owns the schema. Version 1 creates it; version 2
renames a column, adds one and bumps the schema version in one transaction, as an ORM migration
does, and then never becomes healthy. Both images come from the lab's registry on loopback.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.test_postgres_lab import PG_GID, PG_UID
from tests.lab.test_update_lab import image_id

pytestmark = [pytest.mark.lab, pytest.mark.compose]

PSQL = ["psql", "-h", "/tmp", "-U", "postgres", "-Atq", "-v", "ON_ERROR_STOP=1"]
DB_START = ("if [ ! -s \"$PGDATA/PG_VERSION\" ]; then initdb -D \"$PGDATA\" -U postgres --auth=trust >/dev/null; "
            "echo 'host all all all trust' >> \"$PGDATA/pg_hba.conf\"; fi; "
            "exec postgres -D \"$PGDATA\" -c listen_addresses='*' -c unix_socket_directories=/tmp")
WAIT_DB = "until pg_isready -q -h db -U postgres; do sleep 0.5; done; "
SERVE = "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"
SCHEMA_V1 = ("psql -h db -U postgres -v ON_ERROR_STOP=1 -q "
             "-c 'create table if not exists meta (version int not null)' "
             "-c 'insert into meta select 1 where not exists (select 1 from meta)' "
             "-c 'create table if not exists items (id serial primary key, name text not null)'; ")
MIGRATE_V2 = ("psql -h db -U postgres -v ON_ERROR_STOP=1 -q -1 "
              "-c 'alter table items rename column name to title' "
              "-c 'alter table items add column done boolean not null default false' "
              "-c 'update meta set version = 2'; ")
# a migration that rewrites the table, as an ORM's "add a column with a computed default" does (a
# volatile default makes PostgreSQL write a new relation file for the table and its index, and
# drop the old ones); healthy only when it committed
MIGRATE_V3 = ("psql -h db -U postgres -v ON_ERROR_STOP=1 -q -1 "
              "-c 'alter table items add column created timestamptz not null default clock_timestamp()' "
              "-c 'update meta set version = 3' && ")
APP = {1: WAIT_DB + SCHEMA_V1 + "touch /tmp/healthy; " + SERVE,
       2: WAIT_DB + MIGRATE_V2 + SERVE,  # migrated, and never healthy
       3: WAIT_DB + MIGRATE_V3 + "touch /tmp/healthy; " + SERVE}  # migrated, and healthy


def push(ref: str, source: str | None = None, script: str | None = None) -> str:
    """`source` tagged as `ref`, or an app version built on the PostgreSQL image; pushed; its ID."""
    if script is None:
        subprocess.run(["docker", "tag", source, ref], check=True, timeout=60)
    else:
        ctx = Path(f"/tmp/migrate-ctx-{abs(hash(script))}")
        ctx.mkdir(exist_ok=True)
        (ctx / "Dockerfile").write_text(f"FROM {source}\nCMD {json.dumps(['sh', '-c', script])}\n")
        subprocess.run(["docker", "build", "-q", "-t", ref, str(ctx)], check=True, capture_output=True, timeout=300,
                       env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
    subprocess.run(["docker", "push", "-q", ref], check=True, capture_output=True, timeout=600)
    return image_id(ref)


def sql(container: str, query: str) -> str:
    out = subprocess.run(["docker", "exec", container, *PSQL, "-c", query], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def migrating(lab, tmp_path_factory):
    tag = lab.unique("m")
    db_ref = f"{lab.registry}/lab/postgres-{tag}:15"
    app_ref = f"{lab.registry}/lab/notes-{tag}:stable"
    push(db_ref, lab.postgres_image)
    v1 = push(app_ref, db_ref, APP[1])

    def rewrite(cyc, lab) -> None:
        net = f"{cyc.prefix}app_net"
        doc = {
            "services": {
                "db": {"image": "${DB_IMAGE}", "container_name": f"{cyc.prefix}app-db", "user": "100:102",
                       "command": ["sh", "-c", DB_START.replace("$", "$$")],
                       "volumes": [f"{cyc.base}/app/pgdata:/var/lib/postgresql/data"], "networks": [net],
                       "healthcheck": {"test": ["CMD", "pg_isready", "-h", "/tmp", "-U", "postgres"],
                                       "interval": "1s", "retries": 60}},
                "web": {"image": "${APP_IMAGE}", "container_name": f"{cyc.prefix}app", "user": "100:102",
                        "networks": [net], "depends_on": {"db": {"condition": "service_healthy"}},
                        "healthcheck": {"test": ["CMD", "test", "-f", "/tmp/healthy"], "interval": "1s",
                                        "retries": 5}},
            },
            "networks": {net: {"external": True}},
        }
        (cyc.services_dir / "app" / "compose.yaml").write_text(json.dumps(doc, indent=2))
        (cyc.services_dir / "app" / ".env").write_text(f"DB_IMAGE={db_ref}\nAPP_IMAGE={app_ref}\n")

    cyc = build_cycle(lab, tmp_path_factory.mktemp("migrate"), spokes=["app"], rewrite=rewrite,
                      paths=["app/pgdata:REMAPPED_PG_UID:REMAPPED_PGGROUP_UID"],
                      extra={"REMAPPED_PG_UID": str(PG_UID), "REMAPPED_PGGROUP_UID": str(PG_GID),
                             "HEALTH_TIMEOUT": "30", "UPDATE_SETTLE_SECONDS": "2"})
    cyc.db, cyc.db_ref, cyc.app_ref, cyc.v1 = f"{cyc.prefix}app-db", db_ref, app_ref, v1
    yield cyc
    teardown_cycle(cyc)


def test_a_new_version_that_migrates_the_schema_then_fails_is_rolled_back_with_the_old_schema(migrating):
    cyc = migrating
    sql(cyc.db, "insert into items (name) select 'item ' || g from generate_series(1, 50) g")
    rows = sql(cyc.db, "select id, name from items order by id")
    columns = "select string_agg(column_name, ',' order by ordinal_position) from information_schema.columns " \
              "where table_name = 'items'"
    assert sql(cyc.db, columns) == "id,name" and sql(cyc.db, "select version from meta") == "1"

    push(cyc.app_ref, cyc.db_ref, APP[2])  # the registry now has version 2
    subprocess.run(["docker", "tag", cyc.v1, cyc.app_ref], check=True, timeout=30)  # locally still version 1
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # what the database says while the update runs
        while not done.is_set():
            out = subprocess.run(["docker", "exec", cyc.db, *PSQL, "-c", "select version from meta"],
                                 capture_output=True, text=True, timeout=30)
            if out.returncode == 0:
                seen.add(out.stdout.strip())
            time.sleep(0.3)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = run_cli(cyc.env_path, "update", "--yes", "app", timeout=600)
    finally:
        done.set()
        watcher.join()
    assert r.returncode == 1 and "rolled back" in r.stdout and "'web'" in r.stdout, r.stdout + r.stderr
    assert "2" in seen, seen  # version 2 did migrate the live database before it failed
    assert sql(cyc.db, "select version from meta") == "1"
    assert sql(cyc.db, columns) == "id,name"  # the old schema
    assert sql(cyc.db, "select id, name from items order by id") == rows  # and every row as it was
    app = subprocess.run(["docker", "inspect", "--format", "{{.Image}} {{.State.Health.Status}}", f"{cyc.prefix}app"],
                         capture_output=True, text=True, timeout=30).stdout.split()
    assert app == [cyc.v1, "healthy"]  # the old version runs on it again


def night(cyc) -> dict:
    r = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def test_the_night_after_an_update_that_migrated_the_schema_is_not_a_mass_change(migrating):
    """A false alarm the mass-change issue names: an image update whose new version rewrites a
    table. The night after archives it as an ordinary change (printed: docs/security.md quotes it)."""
    cyc = migrating
    night(cyc)  # the night before the update
    push(cyc.app_ref, cyc.db_ref, APP[3])  # the registry now has version 3
    subprocess.run(["docker", "tag", cyc.v1, cyc.app_ref], check=True, timeout=30)  # locally still version 1
    r = run_cli(cyc.env_path, "update", "--yes", "app", timeout=600)
    assert r.returncode == 0 and "app: updated" in r.stdout, r.stdout + r.stderr
    assert sql(cyc.db, "select version from meta") == "3"
    report = night(cyc)
    assert report["mass_changes"] == {} and report["held"] == {}, report
    changed = next(d["changed"] for d in report["datasets"] if d["service"] == "app")
    print(f"\nchanged (the night after an update that rewrote a table): app: {changed}")
    assert changed["modified"] + changed["deleted"] > 0, changed  # the migration did change files

