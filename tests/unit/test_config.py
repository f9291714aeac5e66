"""mlworkshop.yaml: the typed model, its error messages, environment overrides and `set`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlworkshop.config import (
    CONFIG_FILE,
    ConfigError,
    MLWorkshopConfig,
    get_key,
    load_config,
    set_key,
)
from mlworkshop.config.loader import env_overrides, parse_scalar
from mlworkshop.site import ROOT_SITE, default_site_path, render_config_template, resolve_site


def write(site: Path, text: str) -> Path:
    site.mkdir(parents=True, exist_ok=True)
    path = site / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path


def error_for(site: Path, text: str, environ: dict | None = None) -> str:
    write(site, text)
    with pytest.raises(ConfigError) as info:
        load_config(site, environ or {})
    return str(info.value)


# --- defaults and the file ------------------------------------------------------------------
def test_missing_file_gives_defaults(tmp_path):
    cfg = load_config(tmp_path, {})
    assert cfg == MLWorkshopConfig()
    assert (cfg.hub.port, cfg.hub.db_url, cfg.culler.timeout, cfg.spawner.default_url) == (
        8000,
        None,
        7200,
        "/lab",
    )


def test_values_are_read_and_typed(tmp_path):
    write(
        tmp_path,
        "hub:\n  port: 9000\n  base_url: /jupyter\nauth:\n  admin_users: [ada]\nculler:\n  enabled: false\n",
    )
    cfg = load_config(tmp_path, {})
    assert cfg.hub.port == 9000 and cfg.hub.base_url == "/jupyter/"  # trailing slash added
    assert cfg.auth.admin_users == ["ada"] and cfg.culler.enabled is False


def test_empty_file_gives_defaults(tmp_path):
    write(tmp_path, "# nothing set yet\n")
    assert load_config(tmp_path, {}) == MLWorkshopConfig()


def test_rendered_template_is_valid_commented_and_complete(tmp_path):
    text = render_config_template()
    write(tmp_path, text)
    assert load_config(tmp_path, {}) == MLWorkshopConfig()
    assert "# Port the hub's public proxy listens on." in text  # descriptions become comments
    for key in ("port:", "db_url:", "lockout_attempts:", "default_url:", "timeout:"):
        assert key in text


# --- bad values: the message names the key, the value and what is allowed --------------------
@pytest.mark.parametrize(
    "text, key, value, allowed",
    [
        ("hub:\n  port: 99999\n", "hub.port", "99999", "less than or equal to 65535"),
        ("hub:\n  port: 0\n", "hub.port", "0", "greater than or equal to 1"),
        ("hub:\n  port: eighty\n", "hub.port", "'eighty'", "valid integer"),
        ("hub:\n  internal_port: -1\n", "hub.internal_port", "-1", "greater than or equal to 1"),
        ("auth:\n  open_signup: maybe\n", "auth.open_signup", "'maybe'", "valid boolean"),
        ("auth:\n  admin_users: ada\n", "auth.admin_users", "'ada'", "valid list"),
        ("auth:\n  method: kerberos\n", "auth.method", "'kerberos'", "'native', 'oidc'"),
        (
            "auth:\n  min_password_length: 3\n",
            "auth.min_password_length",
            "3",
            "greater than or equal to 6",
        ),
        (
            "hub:\n  log_level: LOUD\n",
            "hub.log_level",
            "'LOUD'",
            "'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        ("hub:\n  ip: my-laptop\n", "hub.ip", "'my-laptop'", "IP address such as 127.0.0.1"),
        ("hub:\n  base_url: jupyter/\n", "hub.base_url", "'jupyter/'", "must start with '/'"),
        ("hub:\n  db_url: oracle://x\n", "hub.db_url", "'oracle://x'", "postgresql://"),
        (
            "workspace:\n  content_dir: course/content\n",
            "workspace.content_dir",
            "'course/content'",
            "absolute path such as /srv/course/content",
        ),
        ("spawner:\n  backend: yarn\n", "spawner.backend", "'yarn'", "'local'"),
        (
            "spawner:\n  local:\n    user_prefix: Bad Prefix\n",
            "spawner.local.user_prefix",
            "'Bad Prefix'",
            "pattern",
        ),
        ("culler:\n  timeout: 5\n", "culler.timeout", "5", "greater than or equal to 60"),
        ("hub: 8000\n", "hub", "8000", "valid dictionary"),
    ],
)
def test_bad_value_names_key_value_and_what_is_allowed(tmp_path, text, key, value, allowed):
    message = error_for(tmp_path, text)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"- {key} =")), None)
    assert line is not None, message
    assert f"{key} = {value}" in line and allowed in line, line
    assert str(tmp_path / CONFIG_FILE) in message  # where to fix it
    assert "Traceback" not in message and "pydantic" not in message.lower()


def test_admin_users_follow_the_username_rule(tmp_path):
    write(tmp_path, "auth:\n  admin_users: [Ada, ' bob ']\n")
    assert load_config(tmp_path, {}).auth.admin_users == ["ada", "bob"]  # folded like signup does
    message = error_for(tmp_path, "auth:\n  admin_users: [ada, ../x]\n")
    assert "auth.admin_users" in message and "'../x' is not allowed" in message
    assert "lowercase letters a-z" in message


def test_bad_value_message_includes_the_options_help(tmp_path):
    message = error_for(tmp_path, "culler:\n  timeout: 5\n")
    assert "Seconds of inactivity before a server is stopped." in message


def test_every_problem_is_reported_at_once(tmp_path):
    message = error_for(tmp_path, "hub:\n  port: 0\n  proxy_api_port: 70000\nculler:\n  every: 1\n")
    for key in ("hub.port", "hub.proxy_api_port", "culler.every"):
        assert f"- {key} =" in message


# --- unknown keys ----------------------------------------------------------------------------
def test_a_check_across_a_section_names_its_keys_not_the_whole_section(tmp_path):
    text = error_for(tmp_path, "spawner:\n  docker:\n    network: host\n    user: '1000:100'\n")
    assert "  - spawner.docker: network host with user '1000:100'" in text
    assert "Fix: user auto" in text and "name_template" not in text  # not every key's value


def test_unknown_key_is_named_with_a_suggestion_and_the_known_keys(tmp_path):
    message = error_for(tmp_path, "hub:\n  prot: 9000\n")
    assert "unknown key 'hub.prot'" in message
    assert "Did you mean 'hub.port'?" in message
    assert "Known keys here:" in message and "internal_port" in message


def test_unknown_section_lists_the_sections(tmp_path):
    message = error_for(tmp_path, "hubb:\n  port: 9000\n")
    assert "unknown key 'hubb'" in message and "Did you mean 'hub'?" in message
    for section in ("hub", "auth", "spawner", "workspace", "culler"):
        assert section in message


def test_unknown_key_deep_down(tmp_path):
    message = error_for(tmp_path, "spawner:\n  local:\n    user_prefx: x-\n")
    assert "unknown key 'spawner.local.user_prefx'" in message and "user_prefix" in message


# --- broken files ----------------------------------------------------------------------------
def test_invalid_yaml_names_the_file(tmp_path):
    message = error_for(tmp_path, "hub:\n  port: [9000\n")
    assert str(tmp_path / CONFIG_FILE) in message and "not valid YAML" in message


def test_a_list_instead_of_sections_is_refused(tmp_path):
    message = error_for(tmp_path, "- hub\n- auth\n")
    assert "must hold a mapping of sections" in message and "list" in message.lower()


# --- environment overrides -------------------------------------------------------------------
def test_environment_overrides_the_file(tmp_path):
    write(tmp_path, "hub:\n  port: 9000\n  ip: 127.0.0.1\n")
    cfg = load_config(
        tmp_path,
        {
            "MLWORKSHOP_HUB__PORT": "9100",
            "MLWORKSHOP_CULLER__ENABLED": "false",
            "MLWORKSHOP_AUTH__ADMIN_USERS": "[ada, bob]",
            "MLWORKSHOP_SPAWNER__LOCAL__USER_PREFIX": "lab-",
        },
    )
    assert cfg.hub.port == 9100 and cfg.hub.ip == "127.0.0.1"  # other file values kept
    assert cfg.culler.enabled is False and cfg.auth.admin_users == ["ada", "bob"]
    assert cfg.spawner.local.user_prefix == "lab-"


def test_site_and_other_variables_are_not_options(tmp_path):
    cfg = load_config(
        tmp_path, {"MLWORKSHOP_SITE": "/elsewhere", "MLWORKSHOP_DEBUG": "1", "HUB__PORT": "1"}
    )
    assert cfg == MLWorkshopConfig()


def test_bad_environment_value_says_it_came_from_the_environment(tmp_path):
    message = error_for(tmp_path, "", {"MLWORKSHOP_HUB__PORT": "0"})
    assert (
        "hub.port = 0 (from MLWORKSHOP_HUB__PORT)" in message
        and "greater than or equal to 1" in message
    )


def test_a_file_value_is_not_blamed_on_the_environment(tmp_path):
    message = error_for(tmp_path, "hub:\n  port: 0\n", {"MLWORKSHOP_HUB__IP": "0.0.0.0"})
    assert "hub.port = 0:" in message and "(from" not in message


def test_unknown_environment_key_is_refused(tmp_path):
    message = error_for(tmp_path, "", {"MLWORKSHOP_HUB__PROT": "9000"})
    assert "unknown key 'hub.prot' (from MLWORKSHOP_HUB__PROT)" in message and "hub.port" in message


def test_environment_keeps_the_case_of_keys_inside_mapping_options(tmp_path):
    cfg = load_config(
        tmp_path,
        {
            "MLWORKSHOP_SPAWNER__ENVIRONMENT__HF_ENDPOINT": "https://hf-mirror.com",
            "MLWORKSHOP_Spawner__Default_URL": "/tree",
        },
    )
    assert cfg.spawner.environment == {"HF_ENDPOINT": "https://hf-mirror.com"}
    assert cfg.spawner.default_url == "/tree"  # option names themselves are case-insensitive


def test_env_overrides_and_scalars():
    assert env_overrides({"MLWORKSHOP_HUB__PORT": "9000", "PATH": "/bin"}) == {
        "hub": {"port": 9000}
    }
    assert (
        parse_scalar("8000") == 8000
        and parse_scalar("true") is True
        and parse_scalar("a: [") == "a: ["
    )


# --- get and set -----------------------------------------------------------------------------
def test_get_key_values_and_sections():
    cfg = MLWorkshopConfig()
    assert get_key(cfg, "hub.port") == 8000
    assert get_key(cfg, "culler") == {
        "enabled": True,
        "timeout": 7200,
        "every": 300,
        "class_prewarm": 600,
        "class_grace": 900,
    }
    with pytest.raises(ConfigError, match="unknown key 'hub.nope'.*Known keys here: ip, port"):
        get_key(cfg, "hub.nope")
    with pytest.raises(ConfigError, match="unknown key 'hub.port.x'"):
        get_key(cfg, "hub.port.x")


def test_set_key_writes_a_valid_value_and_keeps_comments(tmp_path):
    write(tmp_path, "# my notes about this hub\nhub:\n  # the public port\n  port: 8000\n")
    cfg = set_key(tmp_path, "hub.port", "9000")
    assert cfg.hub.port == 9000
    text = (tmp_path / CONFIG_FILE).read_text()
    assert (
        "# my notes about this hub" in text and "# the public port" in text and "port: 9000" in text
    )
    set_key(tmp_path, "culler.timeout", "600")  # a section that was not in the file yet
    assert load_config(tmp_path, {}).culler.timeout == 600


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("hub.port", "99999", "hub.port = 99999"),
        ("hub.prot", "9000", "unknown key 'hub.prot'"),
        ("workspace.content_dir", "relative/dir", "absolute path"),
    ],
)
def test_set_key_refuses_bad_values_and_leaves_the_file_alone(tmp_path, key, value, expected):
    path = write(tmp_path, "hub:\n  port: 8000\n")
    before = path.read_text()
    with pytest.raises(ConfigError, match=expected):
        set_key(tmp_path, key, value)
    assert path.read_text() == before
    assert not list(tmp_path.glob("*.tmp"))


# --- schema and site folder ------------------------------------------------------------------
def test_json_schema_describes_every_section():
    schema = MLWorkshopConfig.model_json_schema()
    json.dumps(schema)
    assert set(schema["properties"]) >= {"hub", "auth", "spawner", "workspace", "culler"}
    hub = schema["$defs"]["HubConfig"]
    assert (
        hub["properties"]["port"]["maximum"] == 65535 and hub["properties"]["port"]["description"]
    )
    assert hub["additionalProperties"] is False


def test_default_site_path():
    assert default_site_path({}, euid=1000) == Path("site")
    assert default_site_path({}, euid=0) == ROOT_SITE == Path("/srv/mlworkshop")
    assert default_site_path({"MLWORKSHOP_SITE": "/data/hub"}, euid=0) == Path("/data/hub")
    assert default_site_path({"MLWORKSHOP_SITE": ""}, euid=1000) == Path("site")


def test_resolve_site_option_wins_and_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_site(Path("mine"), {"MLWORKSHOP_SITE": "/data/hub"}).root == tmp_path / "mine"
    assert resolve_site(None, {"MLWORKSHOP_SITE": "/data/hub"}).root == Path("/data/hub")
