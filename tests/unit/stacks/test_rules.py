"""The hub-and-spoke rules and the Caddyfile upstreams, on models in the
shape `docker compose config --format json` (v2) and `docker-compose config` (v1) print; the lab
tests get them from the real compose."""

from pathlib import Path

from management.stacks.compose_file import (
    find_stacks,
    stack_from_model,
)
from management.stacks.rules import accepted, caddy_files, caddy_upstreams, check_stacks

BASE = Path("/datapool/services")


LISTED = ["reverseproxy/data", "git/data", "git/db", "photo/data", "photo/db"]


CADDY = ("git.lan {\n\ttls internal\n\treverse_proxy gitea:3000\n}\n"
         "photo.lan {\n\treverse_proxy immich_server:2283 {\n\t\tflush_interval -1\n\t}\n}\n")


def stack_dir(root: Path, name: str, model: dict, caddyfile: str | None = None, filename="compose.yaml") -> Path:
    """A stack folder whose compose file is the model itself (JSON is YAML): compose would print
    it back unchanged. Unit tests answer `config` with it."""
    import json

    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / filename).write_text(json.dumps(model))
    if caddyfile is not None:
        (d / "Caddyfile").write_text(caddyfile)
    return d / filename


def hub_model(nets=("git_net", "photo_net"), **extra) -> dict:
    svc = {"image": "caddy", "container_name": "central_hub",
           "ports": [{"mode": "ingress", "target": 443, "published": "443", "protocol": "tcp"}],
           "volumes": [{"type": "bind", "source": "/x/reverseproxy/Caddyfile", "target": "/etc/caddy/Caddyfile",
                        "read_only": True},
                       {"type": "bind", "source": f"{BASE}/reverseproxy/data", "target": "/data"}],
           "networks": {n: None for n in nets}, **extra}
    return {"name": "reverseproxy", "services": {"caddy": svc},
            "networks": {n: {"name": n, "external": True} for n in nets}}


def spoke_model(stack: str, net: str, container: str, **app_extra) -> dict:
    return {
        "name": stack,
        "services": {
            "app": {"image": "busybox", "container_name": container,
                    "volumes": [{"type": "bind", "source": f"{BASE}/{stack}/data", "target": "/data"}],
                    "networks": {"default": None, net: None}, **app_extra},
            "db": {"image": "postgres", "stop_grace_period": "1m30s",
                   "volumes": [{"type": "bind", "source": f"{BASE}/{stack}/db", "target": "/var/lib/postgresql/data"}],
                   "networks": {"default": None}},
        },
        "networks": {"default": {"name": f"{stack}_default"}, net: {"name": net, "external": True}},
    }


def read(root: Path, models: dict[str, dict]):
    found, empty = find_stacks(root)
    return [stack_from_model(d, models[d.name]) for d in found], empty


def world(tmp_path, hub=None, git=None, photo=None, caddy=CADDY):
    models = {"reverseproxy": hub or hub_model(), "git": git or spoke_model("git", "git_net", "gitea"),
              "photo": photo or spoke_model("photo", "photo_net", "immich_server")}
    stack_dir(tmp_path, "reverseproxy", models["reverseproxy"], caddy)
    for name in ("git", "photo"):
        stack_dir(tmp_path, name, models[name])
    first = models["reverseproxy"]["services"]["caddy"]["volumes"][0]
    if first["target"] == "/etc/caddy/Caddyfile":
        first["source"] = str(tmp_path / "reverseproxy" / "Caddyfile")
    return read(tmp_path, models)[0]


def check(stacks, listed=LISTED, **kw):
    return check_stacks(stacks, "reverseproxy", BASE, listed, **kw)


def test_a_correct_hub_and_spokes_pass(tmp_path):
    stacks = world(tmp_path)
    assert [s.name for s in stacks] == ["git", "photo", "reverseproxy"]
    assert check(stacks, stop_timeout=120) == []


def test_a_spoke_publishing_a_port_is_named_with_its_file(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server", ports=[{"target": 2283, "published": "2283"}])
    violations = check(world(tmp_path, photo=photo))
    assert len(violations) == 1
    assert violations[0].file == tmp_path / "photo" / "compose.yaml"
    assert violations[0].message == (
        "service 'app' publishes ports 2283:2283: only the hub (reverseproxy) may: remove them (in its "
        "compose.override.yaml, service 'app': `ports: !reset []`), or declare x-orchestrator.allow.publish with "
        "the reason")


def test_network_mode_host_is_flagged_on_a_spoke_and_on_the_hub(tmp_path):
    ha = spoke_model("photo", "photo_net", "immich_server")
    ha["services"]["app"]["network_mode"] = "host"
    messages = [v.message for v in check(world(tmp_path, photo=ha))]
    assert any("'app' uses network_mode: host: it publishes every port" in m for m in messages)


def test_upstreams_reached_by_alias_pass_and_ambiguous_names_are_flagged(tmp_path):
    git = spoke_model("git", "git_net", "gitea")
    git["services"]["app"]["networks"]["git_net"] = {"aliases": ["forge"]}
    caddy = CADDY.replace("gitea:3000", "forge:3000")
    assert check(world(tmp_path, git=git, caddy=caddy)) == []
    # both spokes call their app service "app": an upstream "app" is ambiguous for Caddy
    caddy = CADDY.replace("gitea:3000", "app:3000")
    messages = [str(v) for v in check(world(tmp_path / "b", caddy=caddy))]
    assert any("Caddyfile:3" in m and "'app' is ambiguous: stacks git, photo" in m for m in messages)


def test_a_hub_missing_a_spoke_network_is_flagged(tmp_path):
    messages = [str(v) for v in check(world(tmp_path, hub=hub_model(nets=("git_net",))))]
    assert any("does not join 'photo_net'" in m and "reverseproxy/compose.yaml" in m for m in messages)
    assert any("Caddyfile:6" in m and "immich_server" in m for m in messages)


def test_spokes_sharing_a_network_and_a_spoke_without_one(tmp_path):
    violations = check(world(tmp_path, git=spoke_model("git", "photo_net", "gitea")))
    assert sum("shared by git, photo" in v.message for v in violations) == 2
    lonely = {"services": {"app": {"image": "busybox"}}}
    assert any("declares no external network" in v.message for v in check(world(tmp_path / "b", git=lonely)))


def test_the_same_container_name_in_two_stacks(tmp_path):
    violations = check(world(tmp_path, photo=spoke_model("photo", "photo_net", "gitea")))
    assert [v.message for v in violations if v.message.startswith("container_name")] == [
        "container_name 'gitea' is also used by stack 'git': docker allows one container per name"]


def test_an_unlisted_path_under_the_base_is_flagged(tmp_path):
    violations = check(world(tmp_path), listed=[p for p in LISTED if p != "git/db"])
    assert [v.message for v in violations] == [
        "service 'db' mounts /datapool/services/git/db, which is under ZFS_BASE_MOUNTPOINT "
        "but not listed in SERVICE_VOLUME_PATHS_AND_OWNERS"]


def test_a_grace_period_that_does_not_fit_stop_timeout(tmp_path):
    violations = check(world(tmp_path), stop_timeout=60)
    assert len(violations) == 2 and all("stop_grace_period 90s" in v.message for v in violations)


def test_an_unreadable_stack_and_a_bad_folder_name_are_named_and_the_rest_is_checked(tmp_path):
    stacks = world(tmp_path)
    stacks[0].error, stacks[0].services = "yaml: line 3: did not find expected key", {}
    violations = check(stacks)
    # gitea's upstream may well be in the stack compose cannot read: not called unreachable
    assert [str(v) for v in violations] == [
        f"{tmp_path}/git/compose.yaml: compose cannot read this stack: yaml: line 3: did not find expected key"]
    stack_dir(tmp_path / "c", "Git Lab", spoke_model("git", "git_net", "gitea"))
    found, _ = find_stacks(tmp_path / "c")
    bad = stack_from_model(found[0], spoke_model("git", "git_net", "gitea"))
    assert any("'Git Lab' is not a valid compose project name" in v.message for v in check([bad]))


def test_no_hub_stack(tmp_path):
    stack_dir(tmp_path, "git", spoke_model("git", "git_net", "gitea"))
    stacks, _ = read(tmp_path, {"git": spoke_model("git", "git_net", "gitea")})
    assert any("no hub stack 'reverseproxy'" in v.message for v in check(stacks))


def test_caddy_upstreams_skip_matchers_and_options():
    text = ("a {\n\treverse_proxy @api backend:8080 other:81 {\n\t\thealth_uri /h\n\t}\n"
            "\treverse_proxy /static/* http://static:80  # comment\n\t# reverse_proxy ignored:1\n}\n")
    assert caddy_upstreams(text) == [(2, "backend"), (2, "other"), (5, "static")]


def test_a_bad_folder_name_is_said_once(tmp_path):
    stack_dir(tmp_path / "c", "Git Lab", spoke_model("git", "git_net", "gitea"))
    [found], _ = find_stacks(tmp_path / "c")
    from management.stacks.compose_file import Stack

    bad = Stack(found.name, found.dir, found.file, error="folder name 'Git Lab' is not a valid compose project name")
    assert [v.message for v in check([bad])].count(
        "folder name 'Git Lab' is not a valid compose project name (lowercase letters, digits, '-' and '_', "
        "starting with a letter or digit)") == 1
    assert not [v for v in check([bad]) if "compose cannot read" in v.message]


def test_dns_on_53_tcp_and_udp_is_named_with_its_protocols_and_can_be_allowed_with_a_reason(tmp_path):
    ports = [{"target": 53, "published": "53", "protocol": "tcp"}, {"target": 53, "published": "53", "protocol": "udp"}]
    dns = spoke_model("photo", "photo_net", "immich_server", ports=ports)
    [v] = check(world(tmp_path, photo=dns))
    assert "publishes ports 53:53/tcp, 53:53/udp: only the hub (reverseproxy) may" in v.message
    dns["x-orchestrator"] = {"allow": {"publish": "DNS for the LAN answers on port 53"}}
    stacks = world(tmp_path / "allowed", photo=dns)
    assert check(stacks) == []
    assert accepted(stacks, "reverseproxy") == [
        "photo: service 'app' publishes 53:53/tcp, 53:53/udp: allowed (DNS for the LAN answers on port 53)"]


def test_a_host_networked_gateway_is_allowed_with_a_reason_and_needs_no_spoke_network(tmp_path):
    gateway = {"name": "photo", "services": {"tailscale": {"image": "tailscale", "network_mode": "host",
                                                           "volumes": [{"type": "bind", "source": f"{BASE}/photo/data",
                                                                        "target": "/var/lib/tailscale"}]}}}
    hub = hub_model(nets=("git_net",))
    caddy = "git.lan {\n\treverse_proxy gitea:3000\n}\n"
    messages = [v.message for v in check(world(tmp_path, hub=hub, photo=gateway, caddy=caddy))]
    assert any("uses network_mode: host" in m and "allow.host-network" in m for m in messages)
    assert not any("declares no external network" in m for m in messages)
    gateway["x-orchestrator"] = {"allow": {"host-network": "Tailscale subnet router: routes the LAN"}}
    stacks = world(tmp_path / "allowed", hub=hub, photo=gateway, caddy=caddy)
    assert check(stacks) == []
    assert accepted(stacks, "reverseproxy") == [
        "photo: service 'tailscale' uses network_mode: host: allowed (Tailscale subnet router: routes the LAN)"]


def test_network_mode_bridge_is_told_to_go_before_a_network_is_added(tmp_path):
    # compose refuses a service with both network_mode and networks: the hint must remove the one
    bridged = {"name": "photo", "services": {"app": {"image": "busybox", "container_name": "immich_server",
                                                     "network_mode": "bridge"}}}
    hub = hub_model(nets=("git_net",))
    caddy = "git.lan {\n\treverse_proxy gitea:3000\n}\n"
    [v] = check(world(tmp_path, hub=hub, photo=bridged, caddy=caddy))
    assert v.message.startswith("service 'app' sets network_mode: bridge")
    assert "remove the line `network_mode: bridge`" in v.message
    assert "`networks: [photo_net]`" in v.message and "`networks: {photo_net: {external: true}}`" in v.message
    assert "declares no external network" not in v.message
    # followed literally (and the hub joins the network, the next hint): nothing left to say
    fixed = {"name": "photo", "services": {"app": {"image": "busybox", "container_name": "immich_server",
                                                   "networks": {"photo_net": None}}},
             "networks": {"photo_net": {"name": "photo_net", "external": True}}}
    assert check(world(tmp_path / "fixed", hub=hub_model(nets=("git_net", "photo_net")), photo=fixed,
                       caddy=caddy)) == []


def test_an_allow_without_a_reason_or_with_an_unknown_rule_is_a_violation(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["x-orchestrator"] = {"allow": {"publish": "", "everything": "yes"}}
    messages = [v.message for v in check(world(tmp_path, photo=photo))]
    assert "x-orchestrator.allow: unknown key 'everything' (known: host-network, publish)" in messages
    assert any(m.startswith("x-orchestrator.allow.publish: give the reason") for m in messages)


def test_the_caddyfile_in_a_folder_bound_to_etc_caddy_is_found_and_checked(tmp_path):
    hub = hub_model()
    conf = tmp_path / "reverseproxy" / "conf"
    conf.mkdir(parents=True)
    (conf / "Caddyfile").write_text("git.lan {\n\treverse_proxy nowhere:3000\n}\n")
    hub["services"]["caddy"]["volumes"][0] = {"type": "bind", "source": str(conf), "target": "/etc/caddy",
                                              "read_only": True}
    [v] = check(world(tmp_path, hub=hub, caddy=None))
    assert str(v) == f"{conf}/Caddyfile:2: reverse_proxy upstream 'nowhere' is not a service, container name or " \
                     "alias on a network the hub shares"


def test_to_upstreams_in_blocks_and_imported_files_are_checked(tmp_path):
    caddy = ("(common) {\n\tencode gzip\n}\nimport sites/*.caddy\nimport /etc/caddy/extra.caddy\n"
             "git.lan {\n\timport common\n\treverse_proxy {\n\t\tto gitea:3000 ghost:3000\n"
             "\t\tlb_policy first\n\t}\n}\n")
    assert caddy_upstreams(caddy) == [(9, "gitea"), (9, "ghost")]
    stacks = world(tmp_path, caddy=caddy)
    hub_dir = tmp_path / "reverseproxy"
    (hub_dir / "sites").mkdir()
    (hub_dir / "sites" / "photo.caddy").write_text("photo.lan {\n\treverse_proxy immich_server:2283 lost:1\n}\n")
    (hub_dir / "extra.caddy").write_text("x.lan {\n\treverse_proxy extra-missing:80\n}\n")
    hub = next(s for s in stacks if s.name == "reverseproxy")
    Bind = type(hub.binds[0])
    hub.binds.append(Bind("caddy", hub_dir / "extra.caddy", "/etc/caddy/extra.caddy"))
    hub.binds.append(Bind("caddy", hub_dir / "sites", "/etc/caddy/sites"))
    files = caddy_files(hub_dir / "Caddyfile", {b.target: b.source for b in hub.binds})
    assert files == [hub_dir / "Caddyfile", hub_dir / "sites" / "photo.caddy", hub_dir / "extra.caddy"]
    found = sorted(str(v) for v in check(stacks))
    assert found == [
        f"{hub_dir}/Caddyfile:9: reverse_proxy upstream 'ghost' is not a service, container name or alias on a "
        "network the hub shares",
        f"{hub_dir}/extra.caddy:2: reverse_proxy upstream 'extra-missing' is not a service, container name or alias "
        "on a network the hub shares",
        f"{hub_dir}/sites/photo.caddy:2: reverse_proxy upstream 'lost' is not a service, container name or alias on "
        "a network the hub shares"]


def test_imports_are_resolved_in_the_hub_container_not_in_the_host_folder(tmp_path):
    # only the Caddyfile is bound into the hub: what sits beside it on the host, Caddy never sees
    caddy = "import sites/*.caddy\nimport extra.caddy\nimport common\n(common) {\n\tencode gzip\n}\n" + CADDY
    stacks = world(tmp_path, caddy=caddy)
    hub_dir = tmp_path / "reverseproxy"
    (hub_dir / "sites").mkdir()
    (hub_dir / "sites" / "photo.caddy").write_text("photo.lan {\n\treverse_proxy lost:1\n}\n")
    (hub_dir / "extra.caddy").write_text("x.lan {\n\tencode gzip\n}\n")
    found = check(stacks)
    assert [str(v) for v in found] == [
        f"warning: {hub_dir}/Caddyfile:1: import sites/*.caddy matches no file in the hub container "
        "(/etc/caddy/sites/*.caddy): it serves nothing; bind the folder it is in, e.g. "
        "`- ./sites:/etc/caddy/sites:ro`",
        f"{hub_dir}/Caddyfile:2: import extra.caddy: the hub container has no /etc/caddy/extra.caddy, and Caddy does "
        f"not start without it; it is on the host ({hub_dir}/extra.caddy), but no bind puts it in the hub: add "
        "`- ./extra.caddy:/etc/caddy/extra.caddy:ro` to the hub service's volumes"]
    assert [v.warning for v in found] == [True, False]
    # both hints followed: the binds compose would resolve to these host paths
    hub = next(s for s in stacks if s.name == "reverseproxy")
    Bind = type(hub.binds[0])
    hub.binds += [Bind("caddy", hub_dir / "sites", "/etc/caddy/sites"),
                  Bind("caddy", hub_dir / "extra.caddy", "/etc/caddy/extra.caddy")]
    assert [str(v) for v in check(stacks)] == [
        f"{hub_dir}/sites/photo.caddy:2: reverse_proxy upstream 'lost' is not a service, container name or alias on "
        "a network the hub shares"]


def test_an_import_missing_on_the_host_too_stops_caddy_and_a_snippet_is_no_file(tmp_path):
    caddy = "(common) {\n\tencode gzip\n}\nimport common\nimport nowhere.caddy\nimport none/*.caddy\n" + CADDY
    [missing, empty] = check(world(tmp_path, caddy=caddy))
    assert missing.message == "import nowhere.caddy: the hub container has no /etc/caddy/nowhere.caddy, and Caddy " \
                              "does not start without it"
    assert not missing.warning and empty.warning and "serves nothing" in empty.message


def test_a_loopback_upstream_is_the_hub_itself_and_the_hint_names_the_spoke(tmp_path):
    ports = [{"mode": "ingress", "target": 3000, "published": "8080", "protocol": "tcp"}]
    git = spoke_model("git", "git_net", "gitea", ports=ports)
    git["x-orchestrator"] = {"allow": {"publish": "reached from the LAN too"}}
    caddy = "git.lan {\n\treverse_proxy 127.0.0.1:8080\n}\nx.lan {\n\treverse_proxy localhost:9000\n}\n" \
            "admin.lan {\n\treverse_proxy localhost:2019\n}\n"
    hub_dir = tmp_path / "reverseproxy"
    first, second = check(world(tmp_path, git=git, caddy=caddy))
    assert str(first.file) == f"{hub_dir}/Caddyfile:2"
    assert first.message == (
        "reverse_proxy upstream 127.0.0.1:8080 is the hub itself: Caddy runs in the hub's container, on its own "
        "network, where 127.0.0.1 and localhost are that container, not the host nor a spoke; git's service 'app' "
        "publishes 8080: write `reverse_proxy gitea:3000` (its name and container port on git's external network, "
        "which the hub joins) and drop that published port")
    assert str(second.file) == f"{hub_dir}/Caddyfile:5" and second.message.endswith(
        "write the spoke's service name and its container port on the network it shares with the hub: "
        "`reverse_proxy <service>:<port>`")
    # followed literally: the container name on git_net answers
    fixed = "git.lan {\n\treverse_proxy gitea:3000\n}\n"
    assert check(world(tmp_path / "fixed", git=spoke_model("git", "git_net", "gitea"), caddy=fixed)) == []


def test_uncovered_data_is_a_violation_with_its_fix_and_another_services_dataset_is_said_once(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["services"]["db"]["volumes"] = [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"},
                                          {"type": "bind", "source": f"{BASE}/git/data", "target": "/git"}]
    photo["volumes"] = {"pgdata": {}}
    messages = [v.message for v in check(world(tmp_path, photo=photo))]
    assert messages == [
        "service 'db' volume pgdata -> /var/lib/postgresql/data: uncovered (docker volume on the OS disk); fix: make "
        "adopt SERVICE_NAME=photo (moves it onto the dataset), or declare it in x-orchestrator.ephemeral with a reason",
        f"service 'db' {BASE}/git/data -> /git: foreign (dataset git, another service's); fix: keep photo's data "
        f"below {BASE}/photo: restoring git would replace it while this stack runs"]


def test_a_writable_folder_in_a_stopped_stacks_folder_passes_in_a_live_one_it_fails_and_the_fix_passes(tmp_path):
    """The night copies the stack folder while a stop-mode stack is stopped: whole. A live
    stack's is copied while it runs: its line says why, and each fix followed passes."""
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["services"]["db"]["volumes"] = [{"type": "bind", "source": str(tmp_path / "photo" / "pgdata"),
                                           "target": "/var/lib/postgresql/data"}]
    assert check(world(tmp_path, photo=photo)) == []
    photo["x-orchestrator"] = {"consistency": "live"}
    [v] = check(world(tmp_path, photo=photo))
    assert v.message == (
        f"service 'db' {tmp_path}/photo/pgdata -> /var/lib/postgresql/data: uncovered (in the stack folder, copied "
        "while the stack runs (consistency: live): a database there may be torn); fix: move it onto the dataset "
        "with make adopt SERVICE_NAME=photo; or remove consistency: live from x-orchestrator (the night then stops "
        "the stack and copies it whole); or declare it in x-orchestrator.ephemeral with a reason")
    # what adopt writes: the mount bound from the dataset, its path listed
    photo["services"]["db"]["volumes"][0]["source"] = f"{BASE}/photo/pgdata"
    assert check(world(tmp_path, photo=photo), listed=[*LISTED, "photo/pgdata"]) == []
    photo["services"]["db"]["volumes"][0]["source"] = str(tmp_path / "photo" / "pgdata")
    photo["x-orchestrator"] = {"consistency": "live", "ephemeral": {"./pgdata": "a cache, rebuilt on start"}}
    assert check(world(tmp_path, photo=photo)) == []
    photo["x-orchestrator"] = {}
    assert check(world(tmp_path, photo=photo)) == []


def test_an_upstream_in_a_stack_the_hub_shares_no_network_with_names_that_stack(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["services"]["app"]["networks"] = {"default": None}  # off photo_net
    [v] = [v for v in check(world(tmp_path, photo=photo)) if "reverse_proxy" in v.message]
    assert v.message == ("reverse_proxy upstream 'immich_server' is in stack photo, on no network the hub shares: "
                         "put it on that stack's external network (e.g. photo_net) and the hub too")



def test_a_dangling_symlinked_stack_folder_is_named_with_its_target(tmp_path):
    from management.stacks.compose_file import dangling_links

    stacks = world(tmp_path)
    (tmp_path / "media").symlink_to("/mnt/usb/media")
    links = dangling_links(tmp_path)
    assert links == [tmp_path / "media"]
    [v] = check(stacks, dangling=links)
    assert str(v).startswith(f"{tmp_path}/media: a symlink to /mnt/usb/media, which does not exist")


def test_a_hub_network_no_stack_declares_is_a_warning(tmp_path):
    [v] = check(world(tmp_path, hub=hub_model(nets=("git_net", "photo_net", "old_net"))))
    assert v.warning and v.file == tmp_path / "reverseproxy" / "compose.yaml"
    assert v.message.startswith("the hub joins 'old_net', which no stack declares")


def test_a_stack_that_rewrites_its_files_on_purpose_declares_it_with_a_reason_and_is_accepted(tmp_path):
    photo = spoke_model("photo", "photo_net", "immich_server")
    photo["x-orchestrator"] = {"mass-change": {"limit": 90, "reason": "re-encodes the library nightly"}}
    stacks = world(tmp_path, photo=photo)
    assert check(stacks) == []
    assert accepted(stacks, "reverseproxy") == [
        "photo: mass-change guard at 90% of its files: declared (re-encodes the library nightly)"]
    photo["x-orchestrator"] = {"mass-change": {"limit": "off", "reason": "a cache rebuilt every night"}}
    assert accepted(world(tmp_path / "off", photo=photo), "reverseproxy") == [
        "photo: mass-change guard off: declared (a cache rebuilt every night)"]
    photo["x-orchestrator"] = {"mass-change": {"limit": 0}}
    messages = [v.message for v in check(world(tmp_path / "bad", photo=photo))]
    assert any("mass-change.limit: 0 must be a percent of the files (1..100) or off" in m for m in messages)
    assert any("mass-change: give the reason this stack rewrites its files" in m for m in messages)


def test_an_allowed_spoke_publishing_the_hubs_port_is_told_which_ports_clash_and_what_to_keep(tmp_path):
    """Pi-hole's file publishes 53 (DNS) and its web UI on 80 and 443; declaring allow.publish
    for the DNS (the exception hint, followed) left 443 published twice: docker starts one of the
    two. The hint names the clash and the ports that stay, in a line compose accepts."""
    ports = [{"target": 53, "published": "53", "protocol": "tcp"}, {"target": 53, "published": "53", "protocol": "udp"},
             {"target": 80, "published": "80", "protocol": "tcp"},
             {"target": 443, "published": "443", "protocol": "tcp"}]
    dns = spoke_model("photo", "photo_net", "immich_server", ports=ports)
    dns["x-orchestrator"] = {"allow": {"publish": "DNS for the LAN"}}
    [v] = check(world(tmp_path, photo=dns))
    assert v.file == tmp_path / "photo" / "compose.yaml"
    assert v.message == (
        "service 'app' publishes host ports that are published again (443:443 by the hub): docker binds a host "
        "port once, so one of them would not start; publish only the others: in its compose.override.yaml, "
        "service 'app' `ports: !override ['53:53', '53:53/udp', '80:80']`")
    # another address of the host is another port; udp is not tcp
    dns["services"]["app"]["ports"] = [{"target": 443, "published": "443", "host_ip": "192.168.1.2"}]
    hub = hub_model(ports=[{"target": 443, "published": "443", "host_ip": "192.168.1.3"},
                           {"target": 53, "published": "53", "protocol": "udp"}])
    assert check(world(tmp_path / "other", hub=hub, photo=dns)) == []
    # a spoke with no exception is told to drop its ports, once (no second violation about the clash)
    del dns["x-orchestrator"]
    dns["services"]["app"]["ports"] = [{"target": 8080, "published": "443", "protocol": "tcp"}]
    [v] = check(world(tmp_path / "plain", photo=dns))
    assert "only the hub (reverseproxy) may" in v.message
    # v1's strings, and every port clashing: remove them all
    dns["x-orchestrator"] = {"allow": {"publish": "DNS for the LAN"}}
    dns["services"]["app"]["ports"] = ["443:8443/tcp"]
    [v] = check(world(tmp_path / "v1", photo=dns))
    assert v.message.endswith("remove its `ports:` (in its compose.override.yaml, service 'app': `ports: !reset []`)")
