"""The locked runs: backup, restore, drill, update. Each takes one RunContext; none imports another."""
