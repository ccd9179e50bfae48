"""The static status page: one row per service, the verdict in its colour, text escaped, charts
inline, nothing that needs a script or another file."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from management.monitoring.page import CHART_H, CHART_W, GREEN, RED, PageRow, render, sparkline
from management.state import NIGHTS_KEPT, Night
from management.verdict import AT_RISK, PROTECTED


def page() -> str:
    nights = [Night(float(i), bytes=1000 * i, duration=2.0 + i) for i in range(1, 31)]
    return render([PageRow("git", PROTECTED, [], 3600.0, 12, nights),
                   PageRow("<photo>", AT_RISK, ["never drilled", "x & <script>alert(1)</script>"], None, None, []),
                   PageRow("wiki", AT_RISK, ["its prune is held"], 7200.0, 3,
                           [Night(1.0, bytes=None, duration=1.0), Night(2.0, bytes=5, duration=None)])],
                  host="vm<1>", generated="2026-12-01 03:30 UTC")


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)


def test_one_row_per_service_with_its_verdict_colour_and_reasons():
    text = page()
    assert text.count('<tr class="service">') == 3
    assert f"background: {GREEN}" in text and f"background: {RED}" in text
    assert '<span class="badge ok">PROTECTED</span>' in text
    assert text.count('<span class="badge risk">AT RISK</span>') == 2
    assert "<li>never drilled</li>" in text and "1h ago" in text and "never" in text
    assert "2 service(s)" not in text and "3 service(s), 2 at risk" in text


def test_every_outside_text_is_escaped_and_nothing_needs_a_script_or_another_file():
    text = page()
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;photo&gt;" in text
    assert "vm&lt;1&gt;" in text and "x &amp; " in text
    tags = Tags()
    tags.feed(text)
    assert "script" not in tags.tags and "link" not in tags.tags and "img" not in tags.tags
    assert tags.tags.count("svg") == 2 + 2  # git: size and duration; wiki: one point each; photo: none
    assert not re.search(r"(src|href)=", text)


def test_a_chart_scales_to_the_largest_value_puts_the_newest_right_and_leaves_gaps_out():
    svg = sparkline([0.0, 5.0, None, 10.0], "size", str)
    bars = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', svg)
    assert len(bars) == 3
    xs, heights = [float(b[0]) for b in bars], [float(b[2]) for b in bars]
    assert xs == sorted(xs) and xs[-1] == CHART_W - CHART_W / NIGHTS_KEPT  # the newest in the last slot
    assert heights[0] < heights[1] < heights[2] == CHART_H - 2  # the largest is full height
    assert ">10.0</span>" in svg and "3 night(s)" in svg
    assert len(re.findall("<rect", sparkline([1.0] * (NIGHTS_KEPT + 5), "size", str))) == NIGHTS_KEPT
    assert sparkline([None, None], "size", str) == '<span class="none">-</span>'


def test_each_service_lists_its_restore_points_newest_first_and_the_commands_escaped():
    snaps = [{"snapshot": "orchestrator-20330515T033000Z", "consistency": "consistent", "archive": "git-a",
              "age_seconds": 6 * 86400.0},
             {"snapshot": "orchestrator-<b>", "consistency": "crash-consistent", "archive": None,
              "age_seconds": 9 * 3600.0}]
    text = render([PageRow("git", PROTECTED, [], 3600.0, 12, [], snaps, ["git-2033-05-14T03:30:00Z", "git-a"]),
                   PageRow("<photo>", AT_RISK, [], None, None, [])], host="vm", generated="now")
    assert text.count('<tr class="restore">') == 2 and 'colspan="7"' in text
    git = text.split('<tr class="restore">')[1]
    assert ("<summary>Restore points: 2 snapshot(s) on this machine (1 crash-consistent), 2 newest archive(s)"
            "</summary>") in git
    assert git.index("orchestrator-&lt;b&gt;") < git.index("orchestrator-20330515T033000Z") < git.index("git-a")
    assert "9h ago" in git and "(taken with the stack running)" in git and "6d ago" in git
    assert "<code>make versions SERVICE_NAME=git FILE=&lt;path&gt;</code>" in git
    assert "make restore-path SERVICE_NAME=git FILE=&lt;path&gt; [WHEN=&lt;snapshot or archive&gt;]" in git
    photo = text.split('<tr class="restore">')[2]
    assert "none recorded yet" in photo and "SERVICE_NAME=&lt;photo&gt;" in photo and "<photo>" not in photo
    tags = Tags()
    tags.feed(text)
    assert "script" not in tags.tags and "details" in tags.tags


def test_each_service_charts_the_files_its_nights_changed_and_marks_a_mass_change():
    from management.monitoring.page import changes

    nights = [Night.from_json(n) for n in ({"changed": {"added": 1, "modified": 4, "deleted": 0}},
                                           {"result": "failed"},
                                           {"changed": {"added": 31, "modified": 31, "deleted": 31, "held": True}})]
    html_text = changes(nights)
    assert "<svg" in html_text and "+31 ~31 -31" in html_text and "mass change" in html_text
    assert html_text.count("<rect") == 2  # the night without a record leaves its slot empty
    assert "mass change" not in changes(nights[:1]) and "-?" in changes([Night.from_json({"changed": {"modified": 2}})])
    assert changes([Night(1.0, files=3)]) == '<span class="none">-</span>'
