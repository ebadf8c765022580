"""Using a trained run: predict files, serve HTTP, export for deployment."""
