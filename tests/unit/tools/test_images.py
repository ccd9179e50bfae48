"""Images: the registry's image ID without a pull, and the tags an update keeps, against a fake runner."""

import json

import pytest

from management.errors import ValidationError
from management.runner import Result
from management.tools.images import Images, manifest_argv, registry_image_id
from tests.fakes import FakeRunner


def test_a_loopback_registry_is_asked_over_plain_http():
    assert manifest_argv("127.0.0.1:15000/a:1")[-2:] == ["--insecure", "127.0.0.1:15000/a:1"]
    assert "--insecure" not in manifest_argv("ghcr.io/immich-app/immich-server:release")


def test_the_registry_image_id_is_the_config_digest_for_the_platform():
    single = {"Descriptor": {"platform": {"os": "linux", "architecture": "amd64"}},
              "SchemaV2Manifest": {"config": {"digest": "sha256:abc"}}}
    arm = {"Descriptor": {"platform": {"os": "linux", "architecture": "arm64"}},
           "OCIManifest": {"config": {"digest": "sha256:arm"}}}
    assert registry_image_id(json.dumps(single)) == "sha256:abc"
    assert registry_image_id(json.dumps([arm, single])) == "sha256:abc"
    with pytest.raises(ValidationError, match="no linux/amd64 image"):
        registry_image_id(json.dumps([arm]))


def test_image_ids_tags_and_untags():
    runner = FakeRunner({("docker", "image", "inspect", "--format", "{{.Id}}", "app:1"): "sha256:old\n",
                         ("docker", "image", "inspect", "--format", "{{.Id}}", "gone:1"): Result((), 1, ""),
                         ("docker", "manifest", "inspect", "-v", "ghcr.io/a/b:1"): json.dumps(
                             {"SchemaV2Manifest": {"config": {"digest": "sha256:new"}}})})
    images = Images(runner)
    assert images.id("app:1") == "sha256:old" and images.id("gone:1") is None
    assert images.registry_id("ghcr.io/a/b:1") == "sha256:new"
    images.tag("sha256:old", "keep:1")
    images.untag("keep:1")
    assert [(c.argv, c.mutating) for c in runner.calls[3:]] == [
        (("docker", "image", "tag", "sha256:old", "keep:1"), True),
        (("docker", "image", "rm", "--no-prune", "keep:1"), True)]
    assert [c.timeout for c in runner.calls if c.argv[1] == "manifest"] == [120]
