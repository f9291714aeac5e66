"""Who owns which account at an identity provider (accounts/idp_links.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mlworkshop.accounts.idp_links import AccountTaken, IdPLinks
from mlworkshop.accounts.store import AccountStore


@pytest.fixture
def links(db_url):
    store = IdPLinks(db_url)
    yield store
    store.dispose()


def test_first_sign_in_makes_the_account_and_later_ones_keep_it(links):
    assert links.claim("oidc", "sub-1", "jane_doe", "Jane.Doe@uni.edu") == "jane_doe"
    # the person's name at the provider changed: same subject, same account (and files)
    assert links.claim("oidc", "sub-1", "jane_smith", "Jane.Smith@uni.edu") == "jane_doe"
    [row] = links.list()
    assert (row.provider, row.subject, row.username) == ("oidc", "sub-1", "jane_doe")


def test_a_second_person_with_the_same_account_name_is_refused_not_merged(links):
    links.claim("oidc", "sub-1", "jane_doe", "Jane.Doe@uni.edu")
    with pytest.raises(AccountTaken) as refused:
        links.claim("oidc", "sub-2", "jane_doe", "jane.doe@other.edu")
    assert "jane.doe@other.edu" in str(refused.value) and "auth unlink jane_doe" in str(
        refused.value
    )
    assert "belongs to someone else" in refused.value.user_message
    assert [r.subject for r in links.list()] == ["sub-1"]  # nothing was written for sub-2


def test_the_same_subject_at_another_provider_is_another_person(links):
    links.claim("oidc", "42", "octocat", "octocat")
    with pytest.raises(AccountTaken):
        links.claim("github", "42", "octocat", "OctoCat")


def test_a_native_account_of_that_name_is_refused(db_url, links):
    accounts = AccountStore(db_url, 10)
    accounts.create("teacher", "Correct-Horse-9", approved=True)
    with pytest.raises(AccountTaken) as refused:
        links.claim("ldap", "teacher", "teacher", "Teacher")
    assert "native" in str(refused.value) and "user remove teacher" in str(refused.value)
    assert links.list() == []


def test_unlink_frees_the_account_for_its_next_owner(links):
    links.claim("oidc", "sub-1", "jane_doe", "Jane.Doe@uni.edu")
    assert links.unlink("jane_doe") is True
    assert links.unlink("jane_doe") is False
    assert links.claim("oidc", "sub-9", "jane_doe", "jane.doe@uni.edu") == "jane_doe"


def test_looking_reserves_nothing(links):
    """A person not admitted (outside the allowed groups) is only looked up: their name's account
    stays free for whoever is admitted first."""
    assert (
        links.claim("oidc", "outsider", "jane_doe", "jane.doe@evil.test", record=False)
        == "jane_doe"
    )
    assert links.list() == []
    assert links.claim("oidc", "sub-1", "jane_doe", "Jane.Doe@uni.edu") == "jane_doe"
