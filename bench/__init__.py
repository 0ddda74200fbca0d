"""The end-to-end benchmark of issue 6: ``make bench`` / ``python -m bench`` (see README.md, "Performance")."""
