"""The house's questions of its stacks, asked of the models compose resolved: the rules they
break (check-stacks), what they declared themselves excused from, and where each mount keeps
its data (coverage). Pure: the stacks come from a reader (the compose wrapper), which runs compose.

`StackQuestions` puts the three on any reader that has `s` (the Settings), `stacks(names)` and
`discover_names()`: the compose wrapper gets them by inheriting it, so its callers ask
`docker.check()`, `docker.coverage(names)` as before, while the answers live here.
"""

from __future__ import annotations

from collections.abc import Sequence

from management.config import Settings
from management.stacks.compose_file import Stack, dangling_links, find_stacks
from management.stacks.coverage import Coverage, stack_coverage
from management.stacks.rules import Violation, accepted, check_stacks


def house_violations(stacks: list[Stack], s: Settings) -> list[Violation]:
    """Every rule of docs/services.md the stacks break, with the folders that hold no stack and
    the symlinked folders whose target is gone."""
    listed = [vp.relative for vp in s.volume_paths]
    _found, empty = find_stacks(s.services_dir)
    return check_stacks(stacks, s.hub_service, s.zfs_base_mountpoint, listed, empty_dirs=empty,
                        stop_timeout=s.stop_timeout, dangling=dangling_links(s.services_dir))


def coverage_by_stack(stacks: list[Stack], s: Settings, discovered: Sequence[str]) -> dict[str, list[Coverage]]:
    """Stack -> the verdict for each of its mounts (stacks compose can read); a dataset is every
    service the settings know and every stack folder found."""
    datasets = sorted(set(s.services) | set(discovered))
    return {st.name: stack_coverage(st, s.zfs_base_mountpoint, datasets) for st in stacks if not st.error}


class StackQuestions:
    """check / accepted / coverage for a reader of stacks (see the module's doc)."""

    s: Settings

    def stacks(self, names: Sequence[str] | None = None) -> list[Stack]:
        raise NotImplementedError

    def discover_names(self) -> list[str]:
        raise NotImplementedError

    def check(self) -> list[Violation]:
        return house_violations(self.stacks(), self.s)

    def accepted(self) -> list[str]:
        """What stacks declared they are excused from, or need not have backed up, with reasons."""
        return accepted(self.stacks(), self.s.hub_service)

    def coverage(self, names: Sequence[str] | None = None) -> dict[str, list[Coverage]]:
        """Stack -> the verdict for each of its mounts (stacks compose can read)."""
        discovered = self.discover_names()
        return coverage_by_stack(self.stacks(names), self.s, discovered)
