"""Use a trained run: the HTTP API and draw-a-digit page (api.py), and export to other runtimes (export.py)."""
