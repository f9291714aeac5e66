"""Issue 13, item 3: a student cannot use the root backup to read what they may not.

The student (`runuser` as her account, against a real root hub whose server made it) plants
links in her home to a root-only secret and to /etc/shadow, tries a hard link to the secret, and
keeps swapping a folder and a file of hers for links to them, as fast as she can, while root runs
`mlworkshop backup` again and again. No archive may hold a byte of the secret or of /etc/shadow;
each must hold the links as links. Restored, the links are links again and nothing outside the
new site is written or changed.
"""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from pathlib import Path

from tests.integration.hubctl import mlw

PASSWORD = "alice-Secret-42"

# Runs as the student in her work/ folder until the deadline.
RACE = textwrap.dedent("""
    import os, sys, time
    secret_dir, deadline = sys.argv[1], time.time() + float(sys.argv[2])
    os.symlink(secret_dir + "/secret.txt", "planted-secret")
    os.symlink("/etc/shadow", "planted-shadow")
    try:
        os.link(secret_dir + "/secret.txt", "hardlink-secret")
        print("HARDLINK MADE")
    except OSError as exc:
        print("hardlink refused:", exc.strerror)
    os.makedirs("swap", exist_ok=True)
    open("swap/own.txt", "w").write("mine\\n")
    open("file", "w").write("mine\\n")
    swaps = 0
    while time.time() < deadline:
        os.rename("swap", "swap.real"); os.symlink(secret_dir, "swap")
        os.rename("file", "file.real"); os.symlink("/etc/shadow", "file")
        os.unlink("swap"); os.rename("swap.real", "swap")
        os.unlink("file"); os.rename("file.real", "file")
        swaps += 1
    print("swaps", swaps)
""")


def test_backup_never_reads_through_a_students_links(make_hub, tmp_path):
    hub = make_hub(**{"culler.enabled": "false"})
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    alice = hub.browser()
    assert alice.login("alice", PASSWORD).status_code == 302
    alice.start_server("alice")
    account = hub.prefix + "alice"
    work = hub.site / "users" / "alice" / "work"

    secret_dir = Path(tempfile.mkdtemp(prefix="mlw-secret-", dir="/tmp"))  # root's, 0700
    marker = "ROOT-ONLY-" + secrets.token_hex(8)
    (secret_dir / "secret.txt").write_text(marker + "\n")
    os.chmod(secret_dir / "secret.txt", 0o600)
    shadow_line = Path("/etc/shadow").read_bytes().split(b"\n")[0]
    try:
        (work / "race.py").write_text(RACE)
        race = subprocess.Popen(
            ["runuser", "-u", account, "--", sys.executable, "race.py", str(secret_dir), "40"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        archives = []
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and race.poll() is None:
                archive = tmp_path / f"b{len(archives)}.tar.gz"
                mlw(hub.site, "backup", str(archive))
                archives.append(archive)
        finally:
            output = race.communicate(timeout=60)[0]
        assert race.returncode == 0, output
        assert "swaps" in output and len(archives) >= 2, output

        hardlinked = "HARDLINK MADE" in output  # only where fs.protected_hardlinks is 0
        for archive in archives:
            stream = gzip.decompress(archive.read_bytes())
            if not hardlinked:
                assert marker.encode() not in stream, f"{archive.name} holds the root-only secret"
            assert shadow_line not in stream, f"{archive.name} holds /etc/shadow"
            with tarfile.open(archive) as tar:
                names = {m.name: m for m in tar.getmembers()}
            planted = names["users/alice/work/planted-secret"]
            assert planted.issym() and planted.linkname == f"{secret_dir}/secret.txt"
            assert names["users/alice/work/planted-shadow"].issym()
            for name in ("users/alice/work/swap", "users/alice/work/file"):
                if name in names:
                    assert names[name].issym() or names[name].isdir() or names[name].isreg()
            hard = names.get("users/alice/work/hardlink-secret")
            if hard is not None:  # fs.protected_hardlinks=0: "what is there", kept root's and 0600
                assert hard.uname == "root" and hard.mode & 0o077 == 0

        # restored: links are links again, and nothing outside the new site changed
        before = sorted(p.name for p in secret_dir.iterdir())
        target = tmp_path / "restored"
        mlw(target, "restore", str(archives[-1]))
        restored = target / "users" / "alice" / "work"
        assert os.readlink(restored / "planted-secret") == f"{secret_dir}/secret.txt"
        assert os.readlink(restored / "planted-shadow") == "/etc/shadow"
        assert sorted(p.name for p in secret_dir.iterdir()) == before
        assert (secret_dir / "secret.txt").read_text() == marker + "\n"
    finally:
        subprocess.run(["rm", "-rf", str(secret_dir)])
