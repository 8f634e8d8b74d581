"""Analysis of run folders: the history checker, summary, SLOs, plots, Markdown, failover figures, matrix."""
