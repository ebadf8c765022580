"""Using a trained run: predict picture files (predict.py), the HTTP API and draw-a-digit page (api.py), and
export to other runtimes (export.py)."""
