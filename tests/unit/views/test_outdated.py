from types import SimpleNamespace

from management.views.outdated import render


def row(stack, status, running="sha256:0123456789abcdef"):
    return SimpleNamespace(stack=stack, service="app", image=f"{stack}:1", running=running, status=status)


def test_one_line_per_service_and_the_count_of_newer_images():
    lines = render([row("web", "newer available"), row("db", "up to date", running=None)])
    assert lines[0].split() == ["STACK", "SERVICE", "RUNNING", "STATUS", "IMAGE"]
    assert lines[1].split()[:3] == ["web", "app", "0123456789ab"] and lines[2].split()[2] == "-"
    assert lines[-1] == "outdated: 1 service(s) with a newer image - `make update` applies them"
    assert render([row("db", "up to date")])[-1] == "outdated: 0 service(s) with a newer image"
