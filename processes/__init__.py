"""One module per OS process of the pipeline."""
