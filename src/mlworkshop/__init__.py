"""mlworkshop: a JupyterHub distribution for ML classes, workshops and GPU/NPU lab servers."""

__version__ = "0.1.0"
