"""The static status page on the real lab, as a person sees it: real backup nights write it into
STATUS_PAGE_DIR, the hub (the lab's Caddy) serves that folder read-only over HTTPS with
`file_server`, and headless Chromium (Debian's package) loads it through the hub. Its DOM has one
row per service; its screenshot has both verdict colours, because one service (git) was drilled
and its repository checked, and the others were not.

The PNG is decoded with the standard library (zlib): no image library is needed."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from management.monitoring.page import GREEN, RED
from tests.conftest import IN_CI
from tests.lab.conftest import build_cycle, teardown_cycle
from tests.lab.envfile import run_cli
from tests.lab.test_stacks_lab import https_through_hub, hub_port

pytestmark = [pytest.mark.lab]
SITE = "backups.lab.test"


def chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    if IN_CI:
        pytest.fail("CI=true but chromium is missing: tests/lab/lab.sh up installs it (Debian package chromium)")
    pytest.skip("chromium not installed (Debian: apt-get install chromium)")


def browse(url: str, port: int, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium as a LAN browser would go: the site's name resolves to the hub (here,
    loopback at the hub's port); the hub's internal CA is not trusted by this profile."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
         "--force-color-profile=srgb", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--host-resolver-rules=MAP {SITE} 127.0.0.1:{port}", *args, url],
        capture_output=True, text=True, timeout=120)


def png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw rows) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _c, _f, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += line
        prev = line
    return width, height, bpp, bytes(out)


def count_colour(pixels: tuple[int, int, int, bytes], hex_colour: str) -> int:
    _w, _h, bpp, raw = pixels
    rgb = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(1 for i in range(0, len(raw), bpp) if raw[i:i + 3] == rgb)


@pytest.fixture
def served(lab, tmp_path):
    """A cycle whose hub also serves STATUS_PAGE_DIR (read-only) as https://backups.lab.test."""
    page_dir = lab.dir / "status-pages" / lab.unique("sp")

    def rewrite(cyc, _lab):
        page_dir.mkdir(parents=True, mode=0o755)
        hub = cyc.services_dir / "reverseproxy"
        spec = json.loads((hub / "compose.yaml").read_text())
        spec["services"]["caddy"]["volumes"].append(f"{page_dir}:/srv/status:ro")
        (hub / "compose.yaml").write_text(json.dumps(spec, indent=2) + "\n")
        with (hub / "Caddyfile").open("a") as f:
            f.write(f"\n{SITE} {{\n\ttls internal\n\troot * /srv/status\n\tfile_server\n}}\n")

    cyc = build_cycle(lab, tmp_path, rewrite=rewrite,
                      extra={"STATUS_PAGE_DIR": str(page_dir),
                             "PROMETHEUS_TEXTFILE": str(tmp_path / "metrics" / "orchestrator.prom")})
    yield cyc, page_dir
    teardown_cycle(cyc)
    shutil.rmtree(page_dir, ignore_errors=True)


def test_a_backup_night_writes_the_page_and_a_browser_sees_it_through_the_hub(served, tmp_path):
    cyc, page_dir = served
    services = ["reverseproxy", *cyc.spokes]
    night = run_cli(cyc.env_path, "backup", "--json", timeout=600)
    assert night.returncode == 0, night.stdout + night.stderr
    first = (page_dir / "index.html").read_text()
    assert first.count('<tr class="service">') == 3 and "PROTECTED</span>" not in first  # nothing drilled yet
    assert list(page_dir.iterdir()) == [page_dir / "index.html"]  # written atomically: no temp file left

    # git gets what the others lack: a passed restore drill and a checked repository
    drill = run_cli(cyc.env_path, "drill", "--no-boot", "git", timeout=600)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    check = run_cli(cyc.env_path, "check-repos", "--repository-only", "git", timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    second = run_cli(cyc.env_path, "backup", "--json", timeout=600)  # the next night rewrites the page
    assert second.returncode == 0, second.stdout + second.stderr

    verdicts = (tmp_path / "metrics" / "orchestrator_verdict.prom").read_text()
    assert 'orchestrator_service_protected{service="git"} 1' in verdicts, verdicts
    assert 'orchestrator_service_protected{service="photo"} 0' in verdicts
    assert 'orchestrator_service_risk{service="photo",reason="never_drilled"} 1' in verdicts

    port = hub_port(cyc)
    assert "Backups on" in https_through_hub(SITE, port)  # the hub serves it; Caddy's certificate is issued
    dom = browse(f"https://{SITE}:{port}/", port, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr
    rows = re.findall(r'<tr class="service"><th scope="row">([^<]+)</th><td><span class="badge (\w+)">',
                      dom.stdout)
    assert rows == [(s, "ok" if s == "git" else "risk") for s in services], dom.stdout[-3000:]
    assert dom.stdout.count("<svg") >= 2 * len(services)  # size and duration charts per service

    shot = tmp_path / "status-page.png"
    taken = browse(f"https://{SITE}:{port}/", port, tmp_path / "profile", f"--screenshot={shot}",
                   "--window-size=1200,800")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr
    pixels = png_pixels(shot.read_bytes())
    assert pixels[:2] == (1200, 800)
    green, red = count_colour(pixels, GREEN), count_colour(pixels, RED)
    assert green > 1000, f"the PROTECTED badge's green {GREEN}: {green} pixels"  # one badge, about 100x28
    assert red > 2 * 1000, f"the AT RISK badges' red {RED}: {red} pixels"  # two badges, and their reasons

    # on demand, from status's own (live) verdicts: the same rows
    html_file = tmp_path / "on-demand" / "page.html"
    made = run_cli(cyc.env_path, "status", "--html", str(html_file))
    assert made.returncode == 0 and "3 service(s)" in made.stdout, made.stdout + made.stderr
    assert html_file.read_text().count('<span class="badge ok">PROTECTED</span>') == 1
