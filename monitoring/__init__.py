"""Monitoring: data and prediction drift, realised and estimated performance, drift history.

Entry points (`monitoring.drift`):
- `run_file_drift(reference_df, current_df, out_dir=None, config=None, *, task=None, labels=None, settings=None)`
- `run_task_drift(task, since=None, out_dir=None, config=None, *, labels=None, until=None, settings=None)`
- `run_task_windows(task, split_at, since=None, until=None, *, config=None, labels=None, settings=None)`:
  consecutive windows, all or nothing (every window evaluated before any is written), rendered side by side
- `retrain.retrain(task, raw, *, if_drift=False, ...)`: drift verdict -> features -> challenger -> gate
- `evaluate(reference, current, config=None) -> DriftResult` (pure: no files, no Evidently)

Building blocks: `stats` (Evidently's default drift tests, vectorised), `psi`, `cbpe`
(performance before labels), `performance` (after labels), `workspace` (Evidently history),
`sources` (files, inference log, champion's MLflow run), `config` (thresholds), `retrain`
(drift verdict -> features -> challenger -> gate). Test fixtures (synthetic windows and market
shifts) live in `tests/monitoring/scenarios.py`.
"""
