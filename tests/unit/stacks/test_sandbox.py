"""The boot drill's isolated model: no live data, no ports, one internal network, local images."""

from __future__ import annotations

from pathlib import Path

import pytest

from management.stacks.sandbox import NotBootable, sandbox_model

BASE = Path("/datapool/services")


def model():
    return {"name": "photo", "services": {
        "server": {"image": "immich:1", "container_name": "immich_server", "build": {"context": "."},
                   "ports": [{"target": 2283, "published": "2283"}], "restart": "unless-stopped",
                   "networks": {"default": None, "photo_net": {"aliases": ["photos"]}},
                   "volumes": [
                       {"type": "bind", "source": "/datapool/services/photo/library", "target": "/upload"},
                       {"type": "bind", "source": "/restored/.orchestrator-stack/Caddyfile", "target": "/c",
                        "read_only": True},
                       {"type": "bind", "source": "/etc/localtime", "target": "/etc/localtime", "read_only": True},
                       {"type": "bind", "source": "/datapool/services/git/repos", "target": "/git",
                        "read_only": True},
                       {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
                       {"type": "volume", "source": "model-cache", "target": "/cache"},
                       {"type": "tmpfs", "target": "/tmp"}]},
        "db": {"image": "postgres:15", "container_name": "immich_postgres", "network_mode": "service:server"}},
        "networks": {"photo_net": {"external": True}}, "volumes": {"model-cache": {}}}


def build(tmp_path, m=None):
    return sandbox_model(m or model(), project="drill-photo", base=BASE, dataset_dir=BASE / "photo",
                         restored=Path("/restored"), stack_copy=Path("/restored/.orchestrator-stack"),
                         fresh=lambda key: tmp_path / key)


def test_nothing_live_is_mounted_no_port_no_egress_and_local_images_only(tmp_path):
    out = build(tmp_path)
    server = out["services"]["server"]
    mounts = {v["target"]: v for v in server["volumes"]}
    assert mounts["/upload"]["source"] == "/restored/library"  # the restored dataset
    assert mounts["/c"]["source"] == "/restored/.orchestrator-stack/Caddyfile"  # the restored folder
    assert mounts["/etc/localtime"]["source"] == "/etc/localtime"  # a read-only host file
    for target in ("/git", "/var/run/docker.sock", "/cache"):  # another dataset, the socket, a volume
        assert mounts[target]["source"].startswith(str(tmp_path)), target
    assert mounts["/git"]["read_only"] and mounts["/tmp"] == {"type": "tmpfs", "target": "/tmp"}
    assert "ports" not in server and "build" not in server and server["pull_policy"] == "never"
    assert server["restart"] == "no" and server["container_name"] == "drill-photo-server"
    assert server["networks"] == {"drill-photo_net": {"aliases": ["immich_server", "photos"]}}
    assert out["networks"] == {"drill-photo_net": {"name": "drill-photo_net", "internal": True}}
    assert out["volumes"] == {} and out["name"] == "drill-photo"
    assert out["services"]["db"]["network_mode"] == "service:server"  # shares the server's, still isolated


def test_a_host_networked_stack_cannot_be_booted_in_isolation(tmp_path):
    m = model()
    m["services"]["server"]["network_mode"] = "host"
    with pytest.raises(NotBootable, match="host's network"):
        build(tmp_path, m)
