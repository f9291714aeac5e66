"""fastpath.protocol: the typed requests on the fast path's sockets. What the hub builds
(ForkRequest, hub/spawner.py) is what the fork server rebuilds from the wire, and anything it
could not have meant is refused with a sentence naming the field."""

from __future__ import annotations

import pytest

from mlworkshop.fastpath import framing
from mlworkshop.fastpath.protocol import ForkRequest, KernelRequest, RequestError

SERVER = dict(
    argv=["mlworkshop.fastpath.singleuser", "--port=5000"],
    env={"JUPYTERHUB_API_TOKEN": "t", "HOME": "/h"},
    cwd="/srv/mlw/users/ann",
    uid=1001,
    gid=1001,
    groups=[1001, 27],
    umask=0o022,
    nice=5,
    cgroups=["/sys/fs/cgroup/mlworkshop/mlw-ann"],
    log="/srv/mlw/logs/users/ann.log",
)


def test_fork_request_round_trips_through_the_wire():
    request = ForkRequest(**SERVER)
    assert ForkRequest.from_message(framing.decode(framing.encode(request.to_message()))) == request


def test_fork_request_of_a_hub_that_is_not_root():
    request = ForkRequest(argv=["x"], env={}, cwd="/tmp")
    assert (request.uid, request.gid, request.groups, request.cgroups, request.log) == (
        None,
        None,
        [],
        [],
        None,
    )
    assert ForkRequest.from_message(request.to_message()) == request


@pytest.mark.parametrize(
    "change, why",
    [
        ({"uid": 0}, "uid must be a whole number from 1"),  # a student's server is never root
        ({"uid": -1}, "uid must be"),
        ({"uid": "1001"}, "uid must be"),
        ({"uid": True}, "uid must be"),
        ({"gid": None}, "gid must be"),
        ({"groups": [27, "wheel"]}, "a group must be"),
        ({"groups": "27"}, "groups must be a list"),
        ({"uid": None, "gid": None}, "gid and groups are only set with a uid"),
        ({"umask": 0o1777}, "umask must be"),
        ({"nice": 99}, "nice must be"),
        ({"cwd": "relative/home"}, "cwd must be an absolute path"),
        ({"cwd": "/a\0b"}, "cwd must be an absolute path"),
        ({"log": "ann.log"}, "log must be an absolute path"),
        ({"cgroups": ["mlworkshop/ann"]}, "a cgroup must be an absolute path"),
        ({"argv": []}, "argv must not be empty"),
        ({"argv": "python"}, "argv must be a list of strings"),
        ({"env": {"A": 1}}, "env must map strings to strings"),
        ({"env": {"A=B": "c"}}, "env has a name or value"),
        ({"env": ["A"]}, "env must map strings to strings"),
    ],
)
def test_fork_request_refuses_what_the_hub_cannot_have_meant(change, why):
    with pytest.raises(RequestError, match=why):
        ForkRequest(**{**SERVER, **change})
    with pytest.raises(RequestError, match=why):
        ForkRequest.from_message({**SERVER, **change})  # the fork server's side checks the same


def test_fork_request_from_the_wire_needs_its_fields_and_no_others():
    with pytest.raises(RequestError, match="needs argv, cwd"):
        ForkRequest.from_message({"env": {}})
    with pytest.raises(RequestError, match="unknown field.*shell"):
        ForkRequest.from_message({**SERVER, "shell": "/bin/sh"})
    with pytest.raises(RequestError, match="JSON object"):
        ForkRequest.from_message(["x"])
    assert issubclass(RequestError, ValueError)


def test_kernel_request_round_trips_and_carries_no_identity():
    request = KernelRequest(
        argv=["python", "-m", "ipykernel_launcher"], env={"A": "b"}, cwd="/home/a"
    )
    assert (
        KernelRequest.from_message(framing.decode(framing.encode(request.to_message()))) == request
    )
    with pytest.raises(RequestError, match="unknown field.*groups, uid"):
        KernelRequest.from_message({**request.to_message(), "uid": 0, "groups": [0]})
    with pytest.raises(RequestError, match="needs env"):
        KernelRequest.from_message({"argv": ["x"], "cwd": "/"})
