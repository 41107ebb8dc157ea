"""``autoretrain ...``: the command line, on the same functions the DAGs run."""
