"""Everything that runs inside (or is loaded by) JupyterHub."""
