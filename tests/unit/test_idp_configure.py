"""auth.method oidc | github | azuread | ldap mapped onto the authenticators (hub/idp_configure.py):
pure, so each test builds a Config and looks at it, and then builds the authenticator from it (the
libraries validate their own options). GitHub and Azure AD are tested here only: no network."""

from __future__ import annotations

import os
import stat

import pytest
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub import idp
from mlworkshop.hub.configure import configure
from mlworkshop.hub.idp_configure import check_idp_config
from mlworkshop.site import Site, init_site


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path / "site")
    init_site(s)
    return s


def build(site: Site, method: str, **section):
    cfg = MLWorkshopConfig.model_validate(
        {"auth": {"method": method, method: section, "admin_users": ["ada"]}}
    )
    c = configure(Config(), cfg, site)
    cls = getattr(idp, c.JupyterHub.authenticator_class.rsplit(".", 1)[1])
    return c, cls(config=c), cfg


def put_secret(site: Site, name: str, value: str = "s3cret") -> None:
    (site.secrets / name).write_text(value + "\n")


def test_oidc_maps_discovery_groups_admins_and_the_secret(site):
    put_secret(site, "oidc_client_secret")
    c, a, cfg = build(
        site,
        "oidc",
        issuer="https://login.uni.edu/realms/main/",
        client_id="ml-hub",
        allowed_groups=["ml-class"],
        admin_groups=["ml-staff"],
        refresh_seconds=120,
    )
    assert c.JupyterHub.authenticator_class == "mlworkshop.hub.idp.GenericIdPAuthenticator"
    assert (
        a.mlw_discovery_url == "https://login.uni.edu/realms/main/.well-known/openid-configuration"
    )
    assert a.client_id == "ml-hub" and a.client_secret == "s3cret"
    assert a.allowed_groups == {"ml-class"} and a.admin_groups == {"ml-staff"}
    assert a.manage_groups and a.auth_state_groups_key == "oauth_user.groups"
    assert a.enable_auth_state and a.auth_refresh_age == 120 and a.refresh_pre_spawn
    assert a.admin_users == {"ada"} and not a.allow_all
    assert a.username_claim == "preferred_username" and a.mlw_subject_key == "sub"
    assert "mlworkshop-cli" in a.blocked_users  # service names are nobody's account
    assert len(c.CryptKeeper["keys"][0]) == 32  # auth_state is encrypted (the refresh tokens)
    assert check_idp_config(cfg, site) == []
    assert "s3cret" not in (site.root / "mlworkshop.yaml").read_text()


def test_oidc_explicit_endpoints_and_no_allowed_groups_admit_everyone_the_provider_signs_in(site):
    put_secret(site, "oidc_client_secret")
    _, a, cfg = build(
        site,
        "oidc",
        client_id="hub",
        authorize_url="https://idp/authorize",
        token_url="https://idp/token",
        userinfo_url="https://idp/userinfo",
        username_claim="email",
        keep_email_domain=True,
    )
    assert (a.authorize_url, a.token_url, a.userdata_url) == (
        "https://idp/authorize",
        "https://idp/token",
        "https://idp/userinfo",
    )
    assert a.mlw_discovery_url == "" and a.allow_all and a.mlw_keep_email_domain
    assert a.normalize_username("Jane.Doe@Uni.edu") == "jane_doe_uni_edu"
    assert check_idp_config(cfg, site) == []


def test_github_maps_organizations_teams_and_needs_an_organization(site):
    put_secret(site, "github_client_secret")
    _, a, cfg = build(
        site,
        "github",
        client_id="Iv1.abc",
        allowed_organizations=["uni-ml", "uni-ml:tutors"],
        admin_groups=["uni-ml:staff"],
    )
    assert a.allowed_organizations == {"uni-ml", "uni-ml:tutors"}
    assert a.admin_groups == {"uni-ml:staff"} and a.populate_teams_in_auth_state
    assert a.auth_state_groups_key is idp.github_team_groups and a.mlw_subject_key == "id"
    assert a.authorize_url == "https://github.com/login/oauth/authorize" and not a.allow_all
    assert check_idp_config(cfg, site) == []
    team = {"slug": "staff", "organization": {"login": "Uni-ML"}}
    assert idp.github_team_groups({"teams": [team]}) == ["uni-ml:staff"]
    _, _, open_cfg = build(site, "github", client_id="Iv1.abc")
    assert any("every GitHub user" in p for p in check_idp_config(open_cfg, site))


def test_azuread_maps_tenant_claims_and_groups(site):
    put_secret(site, "azuread_client_secret")
    _, a, cfg = build(
        site,
        "azuread",
        tenant_id="0000-tenant",
        client_id="app-id",
        allowed_groups=["1111-group-object-id"],
    )
    assert a.tenant_id == "0000-tenant"
    assert a.authorize_url == "https://login.microsoftonline.com/0000-tenant/oauth2/authorize"
    assert a.username_claim == "preferred_username" and a.mlw_subject_key == "oid"
    assert a.auth_state_groups_key == "user.groups" and a.allowed_groups == {"1111-group-object-id"}
    assert check_idp_config(cfg, site) == []


def test_ldap_maps_server_tls_templates_and_every_group_of_interest(site):
    groups = "ou=groups,dc=uni,dc=edu"
    _, a, cfg = build(
        site,
        "ldap",
        server_url="ldaps://ldap.uni.edu",
        bind_dn_template=["uid={username},ou=people,dc=uni,dc=edu"],
        allowed_groups=[f"cn=ml-class,{groups}"],
        admin_groups=[f"cn=ml-staff,{groups}"],
        groups=[f"cn=gpu-users,{groups}"],
        ca_file="/etc/ssl/uni-ca.pem",
    )
    assert (a.server_address, a.server_port, a.tls_strategy.name) == (
        "ldap.uni.edu",
        636,
        "on_connect",
    )
    assert a.tls_kwargs == {"ca_certs_file": "/etc/ssl/uni-ca.pem"}
    assert a.bind_dn_template == ["uid={username},ou=people,dc=uni,dc=edu"]
    # the library tests membership of each of these; which admit is ours to decide
    assert a.allowed_groups == [
        f"cn=ml-class,{groups}",
        f"cn=ml-staff,{groups}",
        f"cn=gpu-users,{groups}",
    ]
    assert a.mlw_allowed_dns == [f"cn=ml-class,{groups}"] and a.mlw_admin_dns == [
        f"cn=ml-staff,{groups}"
    ]
    assert a.manage_groups and a.mlw_allowed_names == ["ml-class"]
    assert idp.group_name_from_dn(f"cn=gpu-users,{groups}") == "gpu-users"
    assert check_idp_config(cfg, site) == []


def test_ldap_lookup_with_a_search_account_needs_its_password(site):
    _, a, cfg = build(
        site,
        "ldap",
        server_url="ldap://127.0.0.1:3389",
        tls="none",
        search_base="ou=people,dc=uni,dc=edu",
        search_bind_dn="cn=reader,dc=uni,dc=edu",
    )
    assert a.lookup_dn and a.user_search_base == "ou=people,dc=uni,dc=edu"
    assert a.tls_strategy.name == "insecure" and a.server_port == 3389
    assert any("auth secret set ldap" in p for p in check_idp_config(cfg, site))
    put_secret(site, "ldap_bind_password", "reader-pw")
    assert check_idp_config(cfg, site) == []


@pytest.mark.parametrize(
    "method, section, expected",
    [
        ("oidc", {"issuer": "https://idp/"}, ["client_id is empty", "auth secret set oidc"]),
        (
            "oidc",
            {"client_id": "x", "token_url": "https://idp/t"},
            ["auth.oidc.issuer", "authorize_url, userinfo_url"],
        ),
        ("azuread", {"client_id": "x"}, ["tenant_id is empty", "auth secret set azuread"]),
        ("ldap", {}, ["server_url is empty", "bind_dn_template"]),
    ],
)
def test_what_is_missing_is_said_with_the_command_that_fixes_it(site, method, section, expected):
    cfg = MLWorkshopConfig.model_validate({"auth": {"method": method, method: section}})
    text = " ".join(check_idp_config(cfg, site))
    for piece in expected:
        assert piece in text, text


def test_bad_urls_are_refused_by_the_model():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="http:// or https://"):
        MLWorkshopConfig.model_validate({"auth": {"oidc": {"issuer": "login.uni.edu"}}})
    with pytest.raises(ValidationError, match="ldap:// or ldaps://"):
        MLWorkshopConfig.model_validate({"auth": {"ldap": {"server_url": "ldap.uni.edu"}}})


def test_auth_secret_set_stores_0600_outside_the_config_and_never_prints_it(site):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlworkshop.cli.main",
            "auth",
            "secret",
            "set",
            "oidc",
            "--site",
            str(site.root),
        ],
        input="Very-Secret-Value\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    path = site.secrets / "oidc_client_secret"
    assert path.read_text() == "Very-Secret-Value\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "Very-Secret-Value" not in result.stdout + result.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlworkshop.cli.main",
            "auth",
            "secret",
            "set",
            "saml",
            "--site",
            str(site.root),
        ],
        input="x\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "oidc, github, azuread, ldap" in bad.stderr
    assert "Traceback" not in bad.stderr
