"""A generic actor runtime on trio."""
