"""Statistics for trustworthy evaluation: normalised scores, aggregate metrics with bootstrap intervals, plots."""
