"""The pipeline report, written after every run that rebuilt the marts."""
