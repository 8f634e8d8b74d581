"""Chaos: faults (inject and heal), the watchers of an experiment, and experiments."""
