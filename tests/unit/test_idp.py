"""The authenticators of hub/idp.py, in process: names, refusals, a provider that does not answer
(a real closed loopback port), and the LDAP group names. The whole flows, with a real provider
and directory, are in tests/auth/."""

from __future__ import annotations

import socket

import pytest
from tornado import web

from mlworkshop.hub import idp


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


async def test_a_provider_that_does_not_answer_is_a_sentence_not_an_exception():
    port = closed_port()
    a = idp.GenericIdPAuthenticator(
        login_service="Uni Login",
        mlw_discovery_url=f"http://127.0.0.1:{port}/.well-known/openid-configuration",
        client_id="hub",
    )
    problem = await a.provider_problem()
    assert problem.startswith("Signing in is not possible right now: Uni Login")
    with pytest.raises(web.HTTPError) as failed:  # the callback path says the same (503)
        await a._ensure_endpoints()
    assert failed.value.status_code == 503 and "not answering" in failed.value.log_message


def test_account_names_follow_the_project_rule_and_stay_valid():
    a = idp.GenericIdPAuthenticator()
    assert a.normalize_username("Jane.Doe@uni.edu") == "jane_doe"
    assert a.normalize_username("jane_doe") == "jane_doe"  # an account name stays as it is
    assert a.validate_username("jane_doe") and not a.validate_username("Jane.Doe@uni.edu")
    assert not a.validate_username(a.normalize_username("李雷"))  # refused, never an account


def test_the_refusal_names_what_admits():
    a = idp.GenericIdPAuthenticator(mlw_allowed_names=["ml-class", "ml-staff"])
    refusal = a.refusal("bob@uni.edu")
    assert refusal.status_code == 403
    assert "bob@uni.edu" in refusal.log_message and "ml-class, ml-staff" in refusal.log_message


def test_ldap_group_dns_become_group_names():
    assert idp.group_name_from_dn("cn=gpu-users,ou=groups,dc=uni,dc=edu") == "gpu-users"
    assert idp.group_name_from_dn("CN=ML Class,OU=Groups,DC=uni,DC=edu") == "ML Class"
