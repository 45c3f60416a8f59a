"""Learning from runs: the run log's estimators, the re-scored plans, the memory factor."""
