"""Containers: what `docker ps` and `docker inspect` say of a compose project's containers, and
`docker stop` / `docker start` by ID for a project whose compose folder is gone.

A project's containers are found by compose's label (PROJECT_LABEL), so they are found whether
or not the stack folder still exists. Queries are `mutating=False`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from management.config import Settings
from management.runner import Runner

PROJECT_LABEL = "com.docker.compose.project"


class Containers:
    def __init__(self, settings: Settings, runner: Runner):
        self.s = settings
        self.runner = runner

    def running_projects(self) -> set[str]:
        """The compose projects with a running container, from one `docker ps`."""
        out = self.runner.run(["docker", "ps", "--filter", f"label={PROJECT_LABEL}",
                               "--format", f'{{{{.Label "{PROJECT_LABEL}"}}}}'], mutating=False).stdout
        return set(out.split())

    def running(self, project: str) -> list[str]:
        """IDs of a project's running containers, whether or not its folder still exists."""
        return self.of_project(project)

    def stop(self, ids: Sequence[str]) -> None:
        """`docker stop` for containers whose compose folder is gone: each keeps the stop
        timeout compose gave it (stop_grace_period); STOP_TIMEOUT bounds the whole call."""
        if ids:
            self.runner.run(["docker", "stop", *ids], timeout=self.s.stop_timeout)

    def start(self, ids: Sequence[str]) -> None:
        """`docker start` for containers whose compose folder is gone (stopped by stop)."""
        if ids:
            self.runner.run(["docker", "start", *ids])

    def of_project(self, project: str, all_states: bool = False) -> list[str]:
        argv = ["docker", "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}"]
        if all_states:  # a `compose run` container (one-off) is not a service of the stack
            argv.insert(2, "-a")
            argv += ["--filter", "label=com.docker.compose.oneoff=False"]
        return self.runner.run(argv, mutating=False).stdout.split()

    def of_projects(self, projects: Sequence[str]) -> dict[str, list[str]]:
        """Project -> the IDs of its containers in any state (one-off `compose run` ones left
        out), for all the projects from one `docker ps`."""
        if len(projects) == 1:
            return {projects[0]: self.of_project(projects[0], all_states=True)}
        out = self.runner.run(["docker", "ps", "-a", "--filter", f"label={PROJECT_LABEL}", "--filter",
                               "label=com.docker.compose.oneoff=False", "--format",
                               f'{{{{.ID}}}}\t{{{{.Label "{PROJECT_LABEL}"}}}}'], mutating=False).stdout
        ids: dict[str, list[str]] = {p: [] for p in projects}
        for line in out.splitlines():
            cid, _, project = line.partition("\t")
            if project in ids:
                ids[project].append(cid)
        return ids

    def inspect(self, ids: list[str]) -> list[tuple[str, str, str]]:
        """(name, state, health) per container; health is 'none' without a healthcheck."""
        return [row[:3] for row in self.states(ids)]

    def states(self, ids: list[str]) -> list[tuple[str, str, str, int]]:
        """(name, state, health, exit code) per container."""
        if not ids:
            return []
        fmt = ("{{.Name}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
               "\t{{.State.ExitCode}}")
        out = self.runner.run(["docker", "inspect", "--format", fmt, *ids], mutating=False).stdout
        rows = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                code = int(parts[3]) if len(parts) > 3 and parts[3].lstrip("-").isdigit() else 0
                rows.append((parts[0].lstrip("/"), parts[1], parts[2], code))
        return rows

    def describe(self, project: str) -> list[dict]:
        """Each container of a project: service, image ID, state, health, restarts, last health output."""
        ids = self.of_project(project, all_states=True)
        if not ids:
            return []
        fmt = ('{{json (index .Config.Labels "com.docker.compose.service")}}\t{{.Image}}\t{{.State.Status}}\t'
               '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}\t{{.RestartCount}}\t{{.Name}}\t'
               '{{.State.ExitCode}}\t{{.HostConfig.RestartPolicy.Name}}\t'
               '{{if .State.Health}}{{json .State.Health.Log}}{{else}}[]{{end}}')
        out = self.runner.run(["docker", "inspect", "--format", fmt, *ids], mutating=False).stdout
        rows = []
        for line in out.splitlines():
            parts = line.split("\t", 8)
            if len(parts) != 9:
                continue
            log = json.loads(parts[8] or "[]") or []
            rows.append({"service": json.loads(parts[0]), "image": parts[1], "state": parts[2], "health": parts[3],
                         "restarts": int(parts[4] or 0), "name": parts[5].lstrip("/"),
                         # a one-shot job (restart: no) that exited 0 has done its work
                         "done": parts[2] == "exited" and parts[6] == "0" and parts[7] in ("", "no"),
                         "last_health": (log[-1].get("Output") or "").strip() if log else ""})
        return rows
