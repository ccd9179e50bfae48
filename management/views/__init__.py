"""Read-only renderings: status, the fleet summary, the backup run table."""
