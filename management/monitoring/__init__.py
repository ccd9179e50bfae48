"""What a run tells the world: Prometheus textfiles, push URLs, notifications, progress."""
