"""Outside tools, one module each (zfs, borg, docker compose and its file model, file trees).

A tool module imports only the base modules (config, errors, runner, state, text) and other tools."""
