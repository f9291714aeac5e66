"""Per-user JupyterLab folders, worked out in each server's own process.

JupyterLab fixes the defaults of LabApp.user_settings_dir and LabApp.workspaces_dir when
`jupyterlab.labapp` is imported, from the importing process's $HOME. The fork server imports it
once, as root, so every server forked from it would keep its student's settings and workspaces
under /root/.jupyter, and every save would answer 500 (Permission denied). This file runs in each
server after it has become its student, so the folders are theirs (JUPYTERLAB_SETTINGS_DIR and
JUPYTERLAB_WORKSPACES_DIR still win, as upstream).
"""

from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

c = get_config()  # noqa: F821 (injected by traitlets when it loads this file)
c.LabApp.user_settings_dir = get_user_settings_dir()
c.LabApp.workspaces_dir = get_workspaces_dir()
