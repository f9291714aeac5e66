"""`mlworkshop init` and `mlworkshop config ...`, run as real subprocesses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from mlworkshop.config import CONFIG_FILE, load_config

from .clirun import assert_refused, mlw, mlw_here, mlw_many


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init ------------------------------------------------------------------------------------
def test_init_creates_the_site_and_a_second_run_changes_nothing(tmp_path):
    root = tmp_path / "new-site"
    first = mlw(root, "init")
    assert first.returncode == 0, first
    config = root / CONFIG_FILE
    assert config.exists() and "# Port the hub's public proxy listens on." in config.read_text()
    assert mode(config) == 0o600  # may hold a database password; students can reach the site root
    assert mode(root / "secrets") == 0o700 and mode(root / "state") == 0o700
    names = {"cookie_secret", "proxy_auth_token", "cli_api_token", "package_index_password"}
    assert {p.name for p in (root / "secrets").iterdir()} == names
    secrets_before = {name: (root / "secrets" / name).read_text() for name in names}
    for name, value in secrets_before.items():
        assert mode(root / "secrets" / name) == 0o600 and len(value.strip()) >= 32
        assert value.strip() not in first.output  # secrets are never printed
    for kind in ("lessons", "datasets", "models"):
        assert (root / "content" / kind).is_dir()
    for folder in ("users", "submissions", "logs"):
        assert (root / folder).is_dir()

    edited = config.read_text().replace("port: 8000", "port: 8123") + "# my own note\n"
    config.write_text(edited)
    (root / "content" / "lessons" / "my-lesson.ipynb").write_text("{}")
    (root / "content" / "datasets" / "grades.csv").write_text("a,b\n")
    (root / "secrets").chmod(0o755)  # loosened by hand: init tightens it again

    second = mlw(root, "init")
    assert second.returncode == 0, second
    assert f"Site ready at {root} (nothing to do)" in second.stdout  # one line, path whole
    assert config.read_text() == edited
    assert {name: (root / "secrets" / name).read_text() for name in names} == secrets_before
    assert (root / "content" / "lessons" / "my-lesson.ipynb").read_text() == "{}"
    assert (root / "content" / "datasets" / "grades.csv").read_text() == "a,b\n"
    assert mode(root / "secrets") == 0o700


# --- config reading --------------------------------------------------------------------------
def test_config_show_get_schema_and_validate(site):
    show, get_section, valid = mlw_many(
        site,
        [
            (("config", "show"), None),
            (("config", "get", "culler"), None),
            (("config", "validate"), None),
        ],
    )
    schema = mlw(None, "config", "schema")  # needs no site
    for run in (show, get_section, schema, valid):
        assert run.returncode == 0, run
    assert (
        "port: 8000" in show.stdout and "culler:" in show.stdout and "timeout: 7200" in show.stdout
    )
    assert (
        get_section.stdout
        == "enabled: true\ntimeout: 7200\nevery: 300\nclass_prewarm: 600\nclass_grace: 900\n"
    )  # YAML, as in the file
    document = json.loads(schema.stdout)
    assert (
        document["properties"]["hub"]
        and document["$defs"]["HubConfig"]["properties"]["port"]["maximum"] == 65535
    )
    assert "valid" in valid.stdout and str(site / CONFIG_FILE) in valid.stdout


def test_environment_overrides_reach_the_cli(site):
    run = mlw(site, "config", "get", "hub.port", env={"MLWORKSHOP_HUB__PORT": "9100"})
    assert run.returncode == 0 and run.stdout.strip() == "9100", run
    bad = mlw(site, "config", "validate", env={"MLWORKSHOP_HUB__PORT": "70000"})
    assert_refused(
        bad, "hub.port = 70000 (from MLWORKSHOP_HUB__PORT)", "less than or equal to 65535"
    )


def test_site_comes_from_mlworkshop_site(site):
    run = mlw(None, "config", "get", "hub.internal_port", env={"MLWORKSHOP_SITE": str(site)})
    assert run.returncode == 0, run
    port = load_config(site, {}).hub.internal_port
    assert port != 8081 and run.stdout.strip() == str(port)


# --- config errors ---------------------------------------------------------------------------
def test_config_set_good_value_is_written_and_kept(site):
    run = mlw(site, "config", "set", "culler.timeout", "900")
    assert run.returncode == 0 and "900" in run.stdout, run
    assert "timeout: 900" in (site / CONFIG_FILE).read_text()
    assert mode(site / CONFIG_FILE) == 0o600
    assert "# Seconds of inactivity" in (site / CONFIG_FILE).read_text()  # comments kept


def test_config_set_takes_a_negative_number_as_the_value(site):
    """hub.nice's default is -5: `config set hub.nice -10` must not be read as an option."""
    run = mlw_here(site, "config", "set", "hub.nice", "-10")
    assert run.returncode == 0, run
    assert load_config(site, {}).hub.nice == -10
    assert_refused(
        mlw_here(site, "config", "set", "hub.nice", "-30"),
        "hub.nice = -30",
        "greater than or equal to -20",
    )


def test_config_set_refuses_bad_values_with_key_value_and_fix(site):
    before = (site / CONFIG_FILE).read_text()
    port = mlw(site, "config", "set", "hub.port", "99999")  # one in a real process, the rest here
    kind, unknown, path = (
        mlw_here(site, "config", "set", key, value)
        for key, value in (
            ("auth.open_signup", "maybe"),
            ("hub.prot", "9000"),
            ("workspace.content_dir", "course/content"),
        )
    )
    assert_refused(port, "hub.port = 99999", "less than or equal to 65535", "mlworkshop config set")
    assert_refused(kind, "auth.open_signup = 'maybe'", "valid boolean")
    assert_refused(unknown, "unknown key 'hub.prot'", "Did you mean 'hub.port'?", "Known keys here")
    assert_refused(
        path,
        "workspace.content_dir = 'course/content'",
        "absolute path such as /srv/course/content",
    )
    assert (site / CONFIG_FILE).read_text() == before


def test_config_set_takes_several_pairs_as_one_change(site):
    """All of them written, or none: a bad second value leaves the first unwritten too."""
    run = mlw_here(site, "config", "set", "culler.timeout", "900", "hub.nice", "-3")
    assert run.returncode == 0, run
    assert "culler.timeout = 900" in run.stdout and "hub.nice = -3" in run.stdout, run
    cfg = load_config(site, {})
    assert (cfg.culler.timeout, cfg.hub.nice) == (900, -3)
    before = (site / CONFIG_FILE).read_text()
    assert_refused(
        mlw_here(site, "config", "set", "culler.timeout", "1200", "hub.prot", "9000"),
        "after setting culler.timeout, hub.prot",
        "Did you mean 'hub.port'?",
    )
    assert_refused(
        mlw_here(site, "config", "set", "culler.timeout", "1200", "hub.port"),
        "KEY VALUE pairs",
        "'hub.port' has no value",
    )
    assert (site / CONFIG_FILE).read_text() == before


def test_a_broken_file_is_reported_by_every_command(site):
    (site / CONFIG_FILE).write_text("hub:\n  port: 0\n  colour: blue\n")
    run = mlw_here(site, "config", "validate")
    assert_refused(
        run,
        "hub.port = 0",
        "greater than or equal to 1",
        "unknown key 'hub.colour'",
        str(site / CONFIG_FILE),
    )


def test_commands_on_a_missing_site_say_how_to_make_it(tmp_path):
    missing = tmp_path / "nowhere"
    for run in (
        mlw_here(missing, "user", "list"),
        mlw_here(missing, "config", "validate"),
        mlw_here(missing, "config", "set", "hub.port", "9000"),
    ):
        assert_refused(run, "No site at", "mlworkshop init")
    assert not missing.exists()


def test_down_on_a_folder_that_is_no_site_says_so(tmp_path):
    """A mistyped --site answered "hub: was not running, proxy: was not running" (exit 0)."""
    assert_refused(mlw(tmp_path / "nowhere", "down"), "No site at", "mlworkshop init")
