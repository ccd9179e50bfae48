"""doctor's checks of who can get in: sshd (port, root login, passwords) and a default-deny
firewall (ufw, else nftables, else iptables)."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

from management.errors import CommandError, OrchestratorError
from management.host.doctor.check import FAIL, OK, WARN, Check, Host, cannot, missing, why

# --- ssh ------------------------------------------------------------------------------------

SSHD_DEFAULTS = {"port": ["22"], "permitrootlogin": ["prohibit-password"], "passwordauthentication": ["yes"],
                 "kbdinteractiveauthentication": ["yes"], "pubkeyauthentication": ["yes"]}


def parse_sshd_config(path: Path, seen: set | None = None) -> dict[str, list[str]]:
    """sshd_config as sshd reads it, for the keys doctor needs: the first value of a keyword wins
    (Port may repeat), `Include` is followed (relative to /etc/ssh), `Match` blocks are not
    applied (they are conditional)."""
    seen = set() if seen is None else seen
    out: dict[str, list[str]] = {}
    if path in seen:
        return out
    seen.add(path)
    in_match = False
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = re.split(r"\s*=\s*|\s+", line, maxsplit=1)
        key, value = parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")
        if key == "match":
            in_match = True
        if in_match:
            continue
        if key == "include":
            for pattern in shlex.split(value):
                full = pattern if pattern.startswith("/") else str(path.parent / pattern)
                for inc in sorted(glob.glob(full)):
                    for k, v in parse_sshd_config(Path(inc), seen).items():
                        if k == "port" and "port" in out:
                            out["port"] += v
                        else:
                            out.setdefault(k, v)
            continue
        if key == "port" and "port" in out:
            out["port"].append(value)
        elif key not in out:
            out[key] = [value.lower() if key != "port" else value]
    return out


def sshd_settings(host: Host) -> tuple[dict[str, list[str]], str] | OrchestratorError:
    """(effective settings, where they came from): `sshd -T` when it runs, else the config file."""
    def compute():
        first: CommandError | None = None
        try:
            out = host.query(["sshd", "-T"]).stdout
        except CommandError as exc:
            first, out = exc, ""
        found: dict[str, list[str]] = {}
        for line in out.splitlines():
            key, _, value = line.strip().partition(" ")
            found.setdefault(key.lower(), []).append(value.strip().lower())
        if found:
            return found, "sshd -T"
        path = host.sshd_config
        if not path.exists():
            if first is not None and missing(first):
                raise first
            raise OrchestratorError(f"sshd -T failed ({why(first) if first else 'no output'}) and {path} "
                                    "does not exist")
        return {**SSHD_DEFAULTS, **parse_sshd_config(path)}, str(path)
    return host.once("sshd", compute)


def _sshd(host: Host, name: str) -> tuple[dict, str] | Check:
    got = sshd_settings(host)
    if isinstance(got, OrchestratorError):
        return cannot(name, got, "the ssh server's settings")
    return got


def check_ssh_port(host: Host) -> Check:
    name = "ssh port"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    ports = [int(p) for p in conf.get("port", ["22"]) if p.isdigit()]
    low = [p for p in ports if p <= 1024]
    if low:
        return Check(WARN, name, f"port {', '.join(map(str, ports))} ({source}): spec 004 moves ssh above 1024 "
                     "to keep it out of the bots' way", f"set `Port 2222` (any free port above 1024) in "
                     f"{host.sshd_config}, allow it in the firewall first, then systemctl restart ssh")
    return Check(OK, name, f"port {', '.join(map(str, ports))} ({source})")


def check_ssh_root(host: Host) -> Check:
    name = "ssh root login"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    value = conf.get("permitrootlogin", ["prohibit-password"])[0]
    fix = f"set `PermitRootLogin no` in {host.sshd_config}, then systemctl restart ssh"
    if value == "no":
        return Check(OK, name, f"PermitRootLogin no ({source})")
    if value == "yes":
        return Check(FAIL, name, f"PermitRootLogin yes ({source}): root can log in, with a password too", fix)
    return Check(WARN, name, f"PermitRootLogin {value} ({source}): root can log in with a key; spec 004 says no "
                 "(log in as ADMIN_USER and sudo)", fix)


def check_ssh_password(host: Host) -> Check:
    name = "ssh password login"
    got = _sshd(host, name)
    if isinstance(got, Check):
        return got
    conf, source = got
    password = conf.get("passwordauthentication", ["yes"])[0]
    kbd = conf.get("kbdinteractiveauthentication", conf.get("challengeresponseauthentication", ["yes"]))[0]
    pubkey = conf.get("pubkeyauthentication", ["yes"])[0]
    fix = f"set `PasswordAuthentication no` in {host.sshd_config} (after your key works), then systemctl restart ssh"
    if password != "no":
        return Check(FAIL, name, f"PasswordAuthentication {password} ({source}): passwords can be guessed over ssh",
                     fix)
    if pubkey == "no":
        return Check(FAIL, name, f"PubkeyAuthentication no ({source}): no key login either",
                     f"set `PubkeyAuthentication yes` in {host.sshd_config}")
    if kbd != "no":
        return Check(WARN, name, f"PasswordAuthentication no, but KbdInteractiveAuthentication {kbd} ({source}): "
                     "PAM may still ask for a password", f"set `KbdInteractiveAuthentication no` in {host.sshd_config}")
    return Check(OK, name, f"keys only: PasswordAuthentication no, KbdInteractiveAuthentication no ({source})")


# --- firewall -------------------------------------------------------------------------------


def nft_input_denies(ruleset: str) -> bool:
    """Whether some base chain on the input hook drops by default: `policy drop`, or a last rule
    that drops or rejects whatever reaches it."""
    for chain in re.findall(r"chain\s+\S+\s*\{(.*?)\n\s*\}", ruleset, re.S):
        if not re.search(r"type\s+filter\s+hook\s+input\b", chain):
            continue
        if re.search(r"policy\s+drop\s*;", chain):
            return True
        rules = [ln.strip() for ln in chain.strip().splitlines() if ln.strip() and not ln.strip().startswith("type")]
        if rules and re.fullmatch(r"(counter( packets \d+ bytes \d+)? )?(drop|reject( with .*)?)", rules[-1]):
            return True
    return False


def iptables_input_denies(rules: str) -> bool:
    lines = [ln.strip() for ln in rules.splitlines() if ln.strip()]
    if any(re.fullmatch(r"-P INPUT (DROP|REJECT)", ln) for ln in lines):
        return True
    appended = [ln for ln in lines if ln.startswith("-A INPUT")]
    return bool(appended) and re.fullmatch(r"-A INPUT -j (DROP|REJECT)( .*)?", appended[-1]) is not None


def check_firewall(host: Host) -> Check:
    """Spec 004: ufw, default deny incoming, only the ssh port allowed. ufw when it is installed;
    otherwise the kernel's ruleset through nft, or iptables."""
    name = "firewall"
    got = sshd_settings(host)
    port = got[0].get("port", ["2222"])[0] if isinstance(got, tuple) else "2222"
    fix = (f"ufw default deny incoming && ufw default allow outgoing && ufw allow {port}/tcp && ufw enable "
           "(the ssh port first, or you lock yourself out)")
    notes = []
    try:
        out = host.query(["ufw", "status", "verbose"]).stdout
        if re.search(r"^Status:\s*active", out, re.M):
            default = re.search(r"^Default:\s*(\w+)\s*\(incoming\)", out, re.M)
            if default and default.group(1) in ("deny", "reject"):
                return Check(OK, name, f"ufw active, default {default.group(1)} incoming")
            return Check(FAIL, name, f"ufw active but default {default.group(1) if default else '?'} incoming", fix)
        notes.append("ufw is inactive")
    except CommandError as exc:
        if not missing(exc):
            return cannot(name, exc, "the firewall")
        notes.append("no ufw")
    for argv, judge, tool in ((["nft", "list", "ruleset"], nft_input_denies, "nft"),
                              (["iptables", "-S", "INPUT"], iptables_input_denies, "iptables")):
        try:
            out = host.query(argv).stdout
        except CommandError as exc:
            if missing(exc):
                notes.append(f"no {tool}")
                continue
            return cannot(name, exc, "the firewall")
        if judge(out):
            return Check(OK, name, f"{'; '.join(notes)}; {tool}: incoming dropped by default")
        return Check(FAIL, name, f"{'; '.join(notes)}; {tool}: incoming accepted by default (no input policy drop)",
                     fix)
    if "ufw is inactive" in notes:
        return Check(FAIL, name, f"{', '.join(notes)}: nothing filters incoming traffic", fix)
    return Check(WARN, name, f"cannot tell: {', '.join(notes)} (neither ufw nor nft nor iptables is installed)",
                 "apt-get install ufw, then " + fix)
