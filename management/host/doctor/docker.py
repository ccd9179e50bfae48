"""doctor's docker checks: userns-remap, the subordinate ids, container log rotation, compose v2."""

from __future__ import annotations

import json

from management.errors import CommandError, OrchestratorError
from management.host.doctor.check import FAIL, OK, WARN, Check, Host, cannot, why
from management.host.storage import merge_subid, parse_daemon_json
from management.tools.compose import is_v1_version


def docker_info(host: Host) -> dict | OrchestratorError:
    def compute() -> dict:
        out = host.query(["docker", "info", "--format", "{{json .}}"]).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise OrchestratorError(f"docker info printed no JSON: {out.strip()[:200]}") from None
    return host.once("docker info", compute)


def daemon_json(host: Host) -> dict | OrchestratorError:
    path = host.settings.docker_daemon_json
    return host.once("daemon.json", lambda: parse_daemon_json(path) if path.exists() else None)


def check_userns(host: Host) -> Check:
    name, s = "userns-remap", host.settings
    info = docker_info(host)
    if isinstance(info, OrchestratorError):
        return cannot(name, info, "that dockerd runs with userns-remap")
    options = info.get("SecurityOptions") or []
    if not any("name=userns" in str(o) for o in options):
        return Check(FAIL, name, "dockerd runs without userns-remap: root in a container is root on the host",
                     f"make setup-storage (sets \"userns-remap\": \"{s.docker_remap_user}\" in "
                     f"{s.docker_daemon_json} and restarts docker)")
    detail = f"active (docker root {info.get('DockerRootDir', '?')})"
    conf = daemon_json(host)
    configured = conf.get("userns-remap") if isinstance(conf, dict) else None
    if configured and configured != s.docker_remap_user:
        return Check(WARN, name, f"{detail}, but {s.docker_daemon_json} maps to {configured!r} and the .env says "
                     f"DOCKER_REMAP_USER={s.docker_remap_user}: REMAPPED_*_UID may not match",
                     f"set DOCKER_REMAP_USER={configured} in {s.env_file}, or make setup-storage")
    return Check(OK, name, detail)


def check_subids(host: Host) -> Check:
    s = host.settings
    name, user = "subuid/subgid", s.docker_remap_user
    wanted = f"{user}:{s.subid_start}:{s.subid_count}"
    short = []
    for path in (s.subuid_file, s.subgid_file):
        try:
            text = path.read_text()
        except FileNotFoundError:
            short.append(f"{path} does not exist")
            continue
        except OSError as exc:
            return Check(WARN, name, f"cannot tell: cannot read {path}: {exc.strerror}", "run doctor as root")
        if merge_subid(text, user, s.subid_start, s.subid_count)[1]:
            last = s.subid_start + s.subid_count - 1
            short.append(f"{path} has no range for {user} covering {s.subid_start}..{last}")
    if short:
        return Check(FAIL, name, "; ".join(short), f"make setup-storage (adds {wanted} to both files)")
    return Check(OK, name, f"{wanted} in {s.subuid_file} and {s.subgid_file}")


def check_log_rotation(host: Host) -> Check:
    name, path = "docker log rotation", host.settings.docker_daemon_json
    conf = daemon_json(host)
    if isinstance(conf, OrchestratorError):
        return Check(FAIL, name, str(conf), f"fix the JSON in {path}, then make setup-storage")
    fix = f"make setup-storage (sets \"log-driver\": \"local\" with max-size 10m, max-file 3 in {path})"
    if conf is None:
        return Check(FAIL, name, f"{path} does not exist: docker's default json-file driver keeps logs forever", fix)
    driver = conf.get("log-driver", "json-file")
    opts = conf.get("log-opts") or {}
    size, files = opts.get("max-size"), opts.get("max-file")
    if driver == "local":
        detail = f"local, max-size {size or '20m (default)'}, max-file {files or '5 (default)'}"
    elif driver == "json-file" and size:
        detail = f"json-file, max-size {size}, max-file {files or '1 (default)'}"
    elif driver == "json-file":
        return Check(FAIL, name, f"{path}: json-file without max-size: container logs grow without bound", fix)
    else:
        return Check(WARN, name, f"{path}: log-driver {driver!r}: rotation is up to that system, not docker", fix)
    info = docker_info(host)
    running = info.get("LoggingDriver") if isinstance(info, dict) else None
    if running and running != driver:
        return Check(WARN, name, f"{path} says {driver} but dockerd runs {running}: the file is not applied yet",
                     "restart docker (systemctl restart docker)")
    return Check(OK, name, detail)


def check_compose(host: Host) -> Check:
    name = "compose v2"
    try:
        out = host.query(["docker", "compose", "version"]).stdout.strip()
        return Check(OK, name, out.splitlines()[0] if out else "docker compose answers")
    except CommandError as exc:
        v2_problem = exc
    install = ("install compose v2: apt-get install docker-compose on Debian 13 (trixie), "
               "docker-compose-plugin from Docker's repository on Debian 12")
    try:
        short = host.query(["docker-compose", "version", "--short"]).stdout.strip()
    except CommandError:
        return Check(FAIL, name, f"no compose: docker compose ({why(v2_problem)}) nor docker-compose", install)
    if not is_v1_version(short):  # Debian 13's docker-compose is v2; docker's CLI does not find it
        return Check(OK, name, f"docker-compose {short} (compose v2 on its own; docker compose: {why(v2_problem)})")
    return Check(WARN, name, f"only compose v1 ({short}): on v1 every stack is stop-mode (x-orchestrator is dropped)",
                 install)
