"""Log readers behind :func:`fastsim.trace.importers.import_trace`, one module per format."""
