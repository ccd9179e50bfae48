"""The host the tool runs on: storage setup, cron, the boot unit, the doctor audit."""
