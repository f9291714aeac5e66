"""The LDAP authenticator in process against a real slapd (no hub): what the hub's login form
gets back for a good password, a directory group, and a directory that does not answer."""

from __future__ import annotations

import json

import pytest
from tornado import web
from traitlets.config import Config

from mlworkshop.hub.idp import LDAPIdPAuthenticator
from tests.integration.hubctl import free_port

PEOPLE = {"jane.doe": "Jane-Ldap-Pass-1", "bob": "Bob-Ldap-Pass-1"}
GROUPS = {"ml-class": ["jane.doe"], "gpu-users": ["jane.doe"]}


def authenticator(tmp_path, port: int, directory) -> LDAPIdPAuthenticator:
    c = Config()
    a = c.LDAPIdPAuthenticator
    a.server_address, a.server_port, a.tls_strategy = "127.0.0.1", port, "insecure"
    a.bind_dn_template = ["uid={username},ou=people,dc=mlw,dc=test"]
    a.allowed_groups = [directory.group_dn("ml-class"), directory.group_dn("gpu-users")]
    a.mlw_allowed_dns = [directory.group_dn("ml-class")]
    a.mlw_allowed_names = ["ml-class"]
    a.mlw_provider, a.mlw_db_url = "ldap", f"sqlite:///{tmp_path / 'hub.sqlite'}"
    a.manage_groups = True
    return LDAPIdPAuthenticator(config=c)


async def test_a_directory_user_gets_an_account_and_groups(tmp_path, slapd):
    directory = slapd(PEOPLE, GROUPS)
    a = authenticator(tmp_path, directory.port, directory)
    model = await a.authenticate(None, {"username": "Jane.Doe", "password": PEOPLE["jane.doe"]})
    assert model["name"] == "jane_doe" and model["groups"] == ["gpu-users", "ml-class"]
    assert await a.check_allowed("jane_doe", model) is True
    assert [link.username for link in a.links.list()] == ["jane_doe"]
    assert await a.authenticate(None, {"username": "jane.doe", "password": "wrong"}) is None
    bob = await a.authenticate(None, {"username": "bob", "password": PEOPLE["bob"]})
    with pytest.raises(web.HTTPError) as refused:
        await a.check_allowed(bob["name"], bob)
    assert refused.value.status_code == 403 and "ml-class" in refused.value.log_message
    assert json.dumps([link.username for link in a.links.list()]) == '["jane_doe"]'


async def test_a_directory_that_does_not_answer_is_a_503_with_a_sentence(tmp_path, slapd):
    directory = slapd(PEOPLE, GROUPS)
    a = authenticator(tmp_path, free_port(), directory)  # nothing listens there
    with pytest.raises(web.HTTPError) as failed:
        await a.authenticate(None, {"username": "jane.doe", "password": PEOPLE["jane.doe"]})
    assert failed.value.status_code == 503
    assert "directory server that checks passwords is not answering" in failed.value.log_message
