"""`critix sweep`: hyperparameter sweeps and many-seed studies as `critix train` runs on Ray.

- `spec`: the sweep file (YAML) and its flags, validated and expanded into configurations and trials, and the
  sweep's manifest `sweep.json` (its state, kept in the sweep folder, not only in Ray);
- `execute`: the trials on a Ray cluster through Ray Tune (resources, concurrency, retries, ASHA);
- `report`: summary.md, results.csv, results.json and plots, through `critix.stats`.

Guide: docs/scaling.md.
"""
