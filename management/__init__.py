"""Homelab services orchestrator: ZFS snapshots, Docker Compose stacks and Borg backups."""

__version__ = "0.1.0"
