"""What every `mlworkshop` command pays before it does anything: the command line imports only
what parsing and the config need. The database (SQLAlchemy), the hub's HTTP client (httpx
through the hub API) and the accelerator allocator are imported by the commands that use them;
with them imported up front, `mlworkshop config set` took 1.4 s on the 2-core test machine, where
a test run and a lab admin's script call it hundreds of times. Fresh interpreters: an import
changes sys.modules for good."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "mlworkshop.accounts.store", "mlworkshop.accelerators.allocator")


def _imported_by(code: str) -> dict[str, bool]:
    probe = (
        code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_command_line_starts_without_the_database():
    assert _imported_by("import mlworkshop.cli.main") == dict.fromkeys(HEAVY, False)


def test_config_set_runs_without_the_database(tmp_path):
    code = (
        "import sys\n"
        "from mlworkshop.cli.main import main\n"
        f"for argv in (['init'], ['config', 'set', 'hub.port', '8123']):\n"
        f"    sys.argv = ['mlworkshop', *argv, '--site', {str(tmp_path)!r}]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit_:\n"
        "        assert not exit_.code, exit_.code\n"
    )
    assert _imported_by(code) == dict.fromkeys(HEAVY, False)
    assert "port: 8123" in (tmp_path / "mlworkshop.yaml").read_text()


def test_the_commands_that_use_the_database_still_find_it(tmp_path):
    """The deferred imports are reached: `user add` opens the account store."""
    code = (
        "import sys\n"
        "from mlworkshop.cli.main import main\n"
        "for argv, stdin in ((['init'], ''), (['user', 'add', 'alice', '--password-stdin'],\n"
        "                                     'a-Long-secret-42\\n')):\n"
        "    import io\n"
        "    sys.stdin = io.StringIO(stdin)\n"
        f"    sys.argv = ['mlworkshop', *argv, '--site', {str(tmp_path)!r}]\n"
        "    try:\n"
        "        main()\n"
        "    except SystemExit as exit_:\n"
        "        assert not exit_.code, exit_.code\n"
    )
    found = _imported_by(code)
    assert found["sqlalchemy"] and found["mlworkshop.accounts.store"], found
