"""Load: the intended-start pacing, the recorder, scenarios, the Locust wiring and the unloaded probe."""
