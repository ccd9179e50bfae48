"""Outside programs, one wrapper module each (zfs, borg, docker compose, blkid, ...).

A tool module runs its program through the Runner or builds its argv for the caller's Runner;
the pure models it reads (a compose stack, its rules and coverage) live in management.stacks.
A tool module imports only the base modules (config, errors, runner, state, text), the stack
models and other tools."""
