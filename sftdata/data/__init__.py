"""Small data files shipped with sftdata (seed tasks, word lists, example data)."""
