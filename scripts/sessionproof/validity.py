"""The bounds a load run must stay within to be trusted, and the exit codes every run ends with.

Both sides need them: the load generator warns in its heartbeat when it crosses a bound (load/runinfo.py);
the analysis judges the finished run against them (analysis/summary.py) and gives its exit code
(analysis/report.py), which the load run then ends with.
"""

from __future__ import annotations

MAX_TRUSTED_CPU_PERCENT = 90.0
# A 1 ms sleeper waking this late at p99 means responses wait as long before the harness sees them.
MAX_LOOP_LAG_P99_US = 5_000
MIN_VALID_DURATION_S = 5.0

BAD_INPUT_EXIT_CODE = 2  # the run folder cannot be read
SLO_BREACH_EXIT_CODE = 3
INVALID_RUN_EXIT_CODE = 4  # before 3: a breach measured by a generator out of its bounds proves nothing
