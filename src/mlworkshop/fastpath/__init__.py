"""The class-rush fast path: user servers and kernels forked from a process that has already
imported JupyterLab and IPython, instead of started cold.

    protocol.py    constants and the typed messages on the two sockets (ForkRequest, KernelRequest)
    framing.py     one line of JSON per message: the only code that reads or writes the wire
    privileges.py  drop_privileges(): the one way any process becomes a student's, in one order
    server.py      the fork server (root, `python -m mlworkshop.fastpath.server`): forks servers
    kernels.py     its kernel half: who may ask for a kernel, what the kernel inherits
    client.py      the hub's side: start the fork server, ask it for a server
    provisioner.py the user server's side: a jupyter_client provisioner that asks for kernels
    singleuser.py  the single-user server every user runs (`python -m mlworkshop.fastpath.singleuser`)

This file imports nothing, on purpose: the fork server runs as root and every module it loads
is copied into each student's server and kernel, so importing `mlworkshop.fastpath.server` must
load nothing of the hub (tests/unit/test_fastpath_imports.py checks that in a fresh interpreter).
"""
