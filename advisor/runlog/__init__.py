"""The run log: one SQLite row per training run, the memory the learner learns from.

A run folder (`runs/<run_id>/`: config.json, events.jsonl, metrics.json, output/) is the
single source of truth of a run; the log indexes it, adds the user's rating, and also holds
runs imported from a CSV file or from existing LoRA files (kohya.py).

One job per module:
- records.py    RunRecord (checked on creation), hyperparameter names, the reserved columns
- schema.py     the `runs` table, schema versions and migrations, record <-> row
- connection.py opening the file: ours or refused (with a backup), WAL, migration, lock retries
- store.py      RunLog: upsert, rate, get, list, ingest run folders, DataFrame
- events.py     events.jsonl: tolerant reader and status/timing/loss summary
- folders.py    a run folder into a RunRecord
- csvio.py      CSV export and import
- importing.py  import from a path (CSV, run folders, LoRA files) and its ImportReport
- kohya.py      existing LoRA files: safetensors headers and kohya's ss_* training settings
- cli.py        `python -m advisor runs ...`
- paths.py      where the log and the runs folder are ($FTA_RUNLOG, $FTA_RUNS_DIR)

pandas is imported only inside `RunLog.to_dataframe()`; no torch anywhere on this path.
"""
