"""Images: the local image an image reference names, what a registry serves for it (without
pulling), and the tags an update keeps for its rollback (`docker image tag` / `rm --no-prune`)."""

from __future__ import annotations

import json

from management.errors import ValidationError
from management.runner import Runner


def manifest_argv(ref: str) -> list[str]:
    """What the registry holds for an image reference, without pulling it. A registry on
    loopback speaks plain HTTP, as docker itself allows."""
    host = ref.split("/", 1)[0] if "/" in ref else ""
    local = host.split(":", 1)[0] in ("127.0.0.1", "localhost", "[::1]")
    return ["docker", "manifest", "inspect", "-v", *(["--insecure"] if local else []), ref]


def registry_image_id(manifest_json: str, platform: str = "linux/amd64") -> str:
    """The image ID (config digest) the registry serves for `platform`: it equals the local image
    ID docker gives that image once pulled, so it compares with what a container runs."""
    data = json.loads(manifest_json)
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        plat = (entry.get("Descriptor") or {}).get("platform") or {}
        if not plat or f"{plat.get('os')}/{plat.get('architecture')}" == platform:
            config = ((entry.get("SchemaV2Manifest") or entry.get("OCIManifest") or {}).get("config") or {})
            if config.get("digest"):
                return config["digest"]
    raise ValidationError(f"the registry has no {platform} image in this manifest")


class Images:
    def __init__(self, runner: Runner):
        self.runner = runner

    def id(self, ref: str) -> str | None:
        """The local image ID of a reference, None when there is no such image."""
        r = self.runner.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], mutating=False,
                            ok_codes=(0, 1))
        return r.stdout.strip() or None if r.returncode == 0 else None

    def registry_id(self, ref: str) -> str:
        out = self.runner.run(manifest_argv(ref), mutating=False, timeout=120).stdout
        return registry_image_id(out)

    def tag(self, image: str, ref: str) -> None:
        self.runner.run(["docker", "image", "tag", image, ref])

    def untag(self, ref: str) -> None:
        """Remove one tag; the image stays while anything else refers to it."""
        self.runner.run(["docker", "image", "rm", "--no-prune", ref], ok_codes=(0, 1))
