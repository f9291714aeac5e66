"""Usage accounting: sessions and samples (store), the process sampler (collector), reports,
quotas, and the usage service (API + dashboards) that JupyterHub runs as a managed service.

The hub side (spawner hooks) writes session start/stop; everything else talks to the hub only
through its REST API.
"""
