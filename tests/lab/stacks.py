"""A lab services dir: a Caddy hub and busybox spokes built from the lab's local images,
laid out as a user keeps them (one folder per stack, the hub joining each spoke's external
network, data bind-mounted from ZFS_BASE_MOUNTPOINT). Used by lab tests, the demo and the
benchmark.

Every name carries `prefix` so stacks of different tests never collide on one docker host.
Spokes stop quickly (`trap` on TERM) unless `stop_delay` asks for a slow stop.
"""

from __future__ import annotations

import json
from pathlib import Path

SPOKE_PORT = 8080


def spoke_compose(name: str, prefix: str, image: str, base: Path, *, stop_delay: float = 0,
                  data_dir: str = "data") -> str:
    """A spoke: busybox httpd serving its ZFS data dir as user 999 (host 100999)."""
    # a slow stop leaves the kernel's uptime (one clock for every container) in the data dir
    # when TERM arrives and when it is done: tests compare the intervals, not wall-clock time
    stop = (f"cat /proc/uptime > /www/.term; sleep {stop_delay}; cat /proc/uptime > /www/.stopped; "
            if stop_delay else "")
    script = (f"httpd -p {SPOKE_PORT} -h /www; trap '{stop}exit 0' TERM; "
              "while :; do sleep 3600 & wait $$!; done")
    doc = {
        "services": {
            "web": {
                "image": image,
                "container_name": f"{prefix}{name}",
                "user": "999:999",
                "command": ["sh", "-c", script],
                "stop_grace_period": f"{int(stop_delay) + 20}s",
                "volumes": [f"{base}/{name}/{data_dir}:/www"],
                "networks": [f"{prefix}{name}_net"],
                "healthcheck": {
                    "test": ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{SPOKE_PORT}/"],
                    "interval": "1s", "timeout": "2s", "retries": 30,
                },
            }
        },
        "networks": {f"{prefix}{name}_net": {"external": True}},
    }
    return json.dumps(doc, indent=2) + "\n"  # JSON is YAML


def hub_compose(prefix: str, image: str, base: Path, spokes: list[str], port: int, hub: str = "reverseproxy") -> str:
    doc = {
        "services": {
            "caddy": {
                "image": image,
                "container_name": f"{prefix}central_hub",
                "ports": [f"127.0.0.1:{port}:443"],
                "volumes": ["./Caddyfile:/etc/caddy/Caddyfile:ro", f"{base}/{hub}/data:/data"],
                "networks": [f"{prefix}{s}_net" for s in spokes],
            }
        },
        "networks": {f"{prefix}{s}_net": {"external": True} for s in spokes},
    }
    return json.dumps(doc, indent=2) + "\n"


def caddyfile(prefix: str, spokes: list[str], domain: str = "lab.test", snippet: str = "") -> str:
    """`snippet`, when given, is a Caddyfile snippet definition (`(name) { ... }`) every site imports."""
    name = snippet.split(")", 1)[0].lstrip("(") if snippet else ""
    imports = f"\timport {name}\n" if name else ""
    sites = [f"{s}.{domain} {{\n\ttls internal\n{imports}\treverse_proxy {prefix}{s}:{SPOKE_PORT}\n}}\n"
             for s in spokes]
    return "{\n\tadmin off\n\tskip_install_trust\n}\n\n" + (snippet + "\n\n" if snippet else "") + "\n".join(sites)


def shipped_snippet(name: str) -> str:
    """A snippet definition from the hub's shipped Caddyfile (services/reverseproxy), verbatim."""
    text = (Path(__file__).resolve().parents[2] / "services" / "reverseproxy" / "Caddyfile").read_text()
    start = text.index(f"({name}) {{")
    depth, i = 0, text.index("{", start)
    while True:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
        i += 1


def write_services(services_dir: Path, *, prefix: str, busybox_image: str, caddy_image: str, base: Path,
                   spokes: list[str], port: int, hub: str = "reverseproxy", stop_delay: float = 0) -> None:
    """Write the hub and spokes. Data dirs ('<base>/<spoke>/data', '<base>/<hub>/data') come
    from setup-storage: list them in SERVICE_VOLUME_PATHS_AND_OWNERS (see volume_lines)."""
    services_dir.mkdir(parents=True, exist_ok=True)
    services_dir.chmod(0o755)
    hub_dir = services_dir / hub
    hub_dir.mkdir(exist_ok=True)
    (hub_dir / "compose.yaml").write_text(hub_compose(prefix, caddy_image, base, spokes, port, hub))
    (hub_dir / "Caddyfile").write_text(caddyfile(prefix, spokes))
    for name in spokes:
        d = services_dir / name
        d.mkdir(exist_ok=True)
        (d / "compose.yaml").write_text(spoke_compose(name, prefix, busybox_image, base, stop_delay=stop_delay))


def volume_lines(spokes: list[str], hub: str = "reverseproxy") -> list[str]:
    return [f"{hub}/data:REMAPPED_ROOT_UID"] + [f"{s}/data:REMAPPED_APP_UID" for s in spokes]


def seed(base: Path, service: str, files: dict[str, bytes], uid: int = 100999) -> None:
    """Write files into a spoke's data dir, owned as the container user would own them."""
    import os

    root = base / service / "data"
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        for p in [path, *path.parents]:
            if p == root.parent:
                break
            os.chown(p, uid, uid)


def fixtures_behind_a_hub(fixtures: Path, services: Path, upstreams: dict[str, str]) -> None:
    """Copy each fixture folder into `services`, and add a Caddy hub (`reverseproxy`) that joins
    `<name>_net` for each of `upstreams` (name -> host:port) and proxies `<name>.lan` to it."""
    import shutil

    for d in fixtures.iterdir():
        if d.is_dir():
            shutil.copytree(d, services / d.name)
    hub = services / "reverseproxy"
    hub.mkdir()
    nets = [f"{name}_net" for name in upstreams]
    (hub / "compose.yaml").write_text(
        "services:\n  caddy:\n    image: caddy:2\n    ports: ['443:443']\n"
        "    volumes: ['./Caddyfile:/etc/caddy/Caddyfile:ro', '${ZFS_BASE_MOUNTPOINT}/reverseproxy/data:/data']\n"
        f"    networks: [{', '.join(nets)}]\n"
        "networks:\n" + "".join(f"  {n}: {{external: true}}\n" for n in nets))
    (hub / "Caddyfile").write_text("".join(f"{name}.lan {{\n\treverse_proxy {up}\n}}\n"
                                           for name, up in upstreams.items()))

