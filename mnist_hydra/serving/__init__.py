"""Using a trained run: classify picture files (classify_files.py), and the HTTP API and draw-a-digit page
(api.py) over the run's model behind one compiled function (compiled_model.py). Exporting a run for other
runtimes is the export package's job."""
