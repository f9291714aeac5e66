"""Per-user JupyterLab folders, worked out in each server's own process.

JupyterLab fixes the defaults of LabApp.user_settings_dir and LabApp.workspaces_dir when
`jupyterlab.labapp` is imported, from the importing process's $HOME. The fork server imports it
once, as root, so every server forked from it would keep its student's settings and workspaces
under /root/.jupyter, and every save would answer 500 (Permission denied). This file runs in each
server after it has become its student, so the folders are theirs (JUPYTERLAB_SETTINGS_DIR and
JUPYTERLAB_WORKSPACES_DIR still win, as upstream).
"""

import os

from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)
# Kernels on Unix sockets in a folder only this student can enter, not on 127.0.0.1 ports any
# local account could subscribe to, and no debugger (its TCP port takes any local account):
# mlworkshop/kernel_sockets.py, mlworkshop/local_kernel.py.
c.ServerApp.kernel_manager_class = "mlworkshop.kernel_sockets.PrivateKernelManager"
c.ServerApp.kernel_spec_manager_class = "mlworkshop.kernel_sockets.LocalKernelSpecManager"
# A forked kernel's websocket waits for the kernel's IOPub greeting instead of kernel_info round
# trips on two more connections (mlworkshop/fastpath/kernel_websocket.py).
c.ServerApp.kernel_websocket_connection_class = (
    "mlworkshop.fastpath.kernel_websocket.ForkedKernelConnection"
)
c.LabApp.user_settings_dir = get_user_settings_dir()
c.LabApp.workspaces_dir = get_workspaces_dir()

# hub.language (the hub's hub/i18n.py sets it per server): the language JupyterLab's server side
# translates menus and settings into while the student has chosen none (a choice in Settings >
# Language wins). jupyterlab_server takes it from the process's locale once, when imported: in
# the fork server, as root, for every server, so it is set here, in each server.
_lab_locale = os.environ.get("MLWORKSHOP_LAB_LOCALE")
if _lab_locale:
    from jupyterlab_server import settings_utils, translation_utils, translations_handler

    for _module in (translation_utils, settings_utils, translations_handler):
        _module.SYS_LOCALE = _lab_locale
