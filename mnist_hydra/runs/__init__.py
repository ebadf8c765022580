"""Run directories and what is in them: files, metrics, plots, reports, sweep tables, provenance."""
