"""The house's questions of its stacks (check-stacks, accepted, coverage), asked of models a
reader hands over: here a reader that reads them from the folders, as compose would resolve them."""

from __future__ import annotations

from management.stacks.house import StackQuestions, coverage_by_stack, house_violations
from management.stacks.rules import check_stacks
from tests.unit.config.test_load import BASE, settings_with
from tests.unit.stacks.test_rules import CADDY, hub_model, spoke_model, stack_dir, world


def settings_for(tmp_path, services):
    return settings_with(tmp_path, "HUB_SERVICE=reverseproxy\n",
                         base=BASE.replace("SERVICES_DIR=/home/runner/services", f"SERVICES_DIR={services}"))


class Reader(StackQuestions):
    def __init__(self, s, stacks):
        self.s, self._stacks = s, {st.name: st for st in stacks}

    def stacks(self, names=None):
        return [self._stacks[n] for n in (self._stacks if names is None else names)]

    def discover_names(self):
        return list(self._stacks)


def test_the_rules_get_the_listed_paths_the_empty_folders_and_the_stop_timeout_from_the_settings(tmp_path):
    services = tmp_path / "services"
    stacks = world(services)
    (services / "empty").mkdir()
    s = settings_for(tmp_path, services)
    found = house_violations(stacks, s)
    assert found == check_stacks(stacks, "reverseproxy", s.zfs_base_mountpoint,
                                 [vp.relative for vp in s.volume_paths], empty_dirs=[services / "empty"],
                                 stop_timeout=s.stop_timeout)
    assert any("empty" in str(v) for v in found)
    assert Reader(s, stacks).check() == found


def test_coverage_is_per_readable_stack_against_every_known_dataset(tmp_path):
    services = tmp_path / "services"
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["services"]["app"]["volumes"] = [{"type": "volume", "source": "pgdata", "target": "/pg"}]
    photo["volumes"] = {"pgdata": {}}
    stacks = world(services, photo=photo)
    s = settings_for(tmp_path, services)
    by_stack = coverage_by_stack(stacks, s, ["reverseproxy", "git", "photo"])
    assert set(by_stack) == {"reverseproxy", "git", "photo"}
    assert [c.target for c in by_stack["photo"] if c.problem] == ["/pg"]
    reader = Reader(s, stacks)
    assert reader.coverage(["photo"]) == {"photo": by_stack["photo"]}
    assert reader.accepted() == []


def test_a_stack_compose_cannot_read_has_no_coverage(tmp_path):
    services = tmp_path / "services"
    stack_dir(services, "reverseproxy", hub_model(), CADDY)
    stacks = world(services)
    broken = stacks[1].__class__(stacks[1].name, stacks[1].dir, stacks[1].file, error="bad yaml")
    s = settings_for(tmp_path, services)
    assert broken.name not in coverage_by_stack([stacks[0], broken], s, [])
