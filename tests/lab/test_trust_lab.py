"""The tool believes the repository, not its memory (the real lab, borg over ssh): a dataset
with nothing written since its last archive is skipped only while that archive is in the
repository. A repository replaced by an empty one, or BORG_REPO_BASE_PATH pointed at a new
place, makes the next night a full backup that says why, and status counts from the repository."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.lab.envfile import run_cli

pytestmark = [pytest.mark.lab]


def night(cycle) -> dict[str, dict]:
    r = run_cli(cycle.env_path, "backup", "--json", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return {d["service"]: d for d in json.loads(r.stdout)["datasets"]}


def test_a_replaced_or_moved_repository_makes_the_next_night_a_full_backup(cycle, lab):
    night(cycle)
    second = night(cycle)
    assert {s: d["result"] for s, d in second.items()} == {"reverseproxy": "unchanged", "git": "unchanged",
                                                          "photo": "unchanged"}, second

    # photo's repository is replaced by an empty one (a new backup server, a wiped disk)
    shutil.rmtree(Path(lab.borg_repos) / cycle.prefix / "photo")
    init = run_cli(cycle.env_path, "init-repos", "photo")
    assert init.returncode == 0, init.stdout + init.stderr
    third = night(cycle)
    assert third["git"]["result"] == "unchanged" and third["photo"]["result"] == "ok", third
    assert re.search(r"photo-\S+, which held it, is not in \S+/photo any more|is not the repository that held",
                     third["photo"]["message"]), third["photo"]
    status = json.loads(run_cli(cycle.env_path, "status", "--json").stdout)
    assert {s["service"]: s["archives"] for s in status["services"]}["photo"] == 1

    # BORG_REPO_BASE_PATH pointed at a new place: every service gets a full backup, saying why
    env = cycle.env_path.read_text()
    old = cycle.values["BORG_REPO_BASE_PATH"]
    cycle.env_path.write_text(env.replace(f"BORG_REPO_BASE_PATH={old}", f"BORG_REPO_BASE_PATH={old}-moved"))
    fourth = night(cycle)
    assert all(d["result"] == "ok" and "a full backup tonight" in d["message"] for d in fourth.values()), fourth


def test_an_emptied_dataset_holds_the_prune_until_a_person_releases_it(cycle, lab):
    from tests.lab.stacks import seed

    night(cycle)
    data = cycle.base / "photo" / "data"
    for path in sorted(data.rglob("*"), reverse=True):  # a mistake, ransomware, a bad migration
        path.unlink() if path.is_file() else path.rmdir()
    seed(cycle.base, "photo", {"index.html": b"<h1>gone</h1>"})
    r = run_cli(cycle.env_path, "backup", "--json", timeout=900)
    assert r.returncode == 1, r.stdout + r.stderr  # not an OK night
    report = json.loads(r.stdout)
    assert list(report["held"]) == ["photo"] and "fewer than" in report["held"]["photo"]
    photo = {d["service"]: d for d in report["datasets"]}["photo"]
    assert photo["result"] == "ok" and not photo["pruned"]  # backed up, nothing pruned
    status = run_cli(cycle.env_path, "status")
    assert "HELD" in status.stdout and "prune held: photo" in status.stdout
    again = run_cli(cycle.env_path, "backup", "--json", timeout=900)  # nothing changed: no borg, still said
    assert again.returncode == 1 and "photo" in json.loads(again.stdout)["held"]  # held until released
    # nothing was pruned while held: the good archive and the emptied one (the default retention
    # would keep one archive of today)
    assert run_cli(cycle.env_path, "list-archives", "photo").stdout.count("photo-") == 2
    released = run_cli(cycle.env_path, "release-prune", "photo")
    assert released.returncode == 0 and "released" in released.stdout
    seed(cycle.base, "photo", {"new.txt": b"the new normal"})
    assert run_cli(cycle.env_path, "backup", "--json", timeout=900).returncode == 0
    # pruned again: fewer than the three archives there would be without a prune
    assert run_cli(cycle.env_path, "list-archives", "photo").stdout.count("photo-") < 3
