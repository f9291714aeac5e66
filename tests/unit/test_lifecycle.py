"""The one spawner lifecycle (hub/lifecycle.py): its stated order, its settings as traits (no second
read of mlworkshop.yaml), backends named by a class attribute, and the hub-level task that frees the
devices of servers that no longer run. Real allocator and usage store (SQLite in tmp_path); the
servers themselves are started by tests/integration and tests/containers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from traitlets import TraitError
from traitlets.config import Config

from mlworkshop.accelerators.allocator import Allocator
from mlworkshop.accelerators.inventory import Device
from mlworkshop.accelerators.profiles import Profile
from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.accelerators import StaleDevices
from mlworkshop.hub.configure import apply_spawner
from mlworkshop.hub.docker_backend import DockerWorkspaceSpawner
from mlworkshop.hub.lifecycle import WorkshopSpawner, hub_server_alive
from mlworkshop.hub.spawn_form import render_options_form
from mlworkshop.hub.spawner import LocalSpawner
from mlworkshop.site import Site

TWO_GPUS = [
    {"kind": "nvidia", "index": 0, "name": "Fake GPU"},
    {"kind": "nvidia", "index": 1, "name": "Fake GPU"},
]


def _user(name: str, **kwargs) -> SimpleNamespace:
    user = SimpleNamespace(
        name=name,
        admin=False,
        groups=[],
        spawners={},
        settings={},
        url=f"/user/{name}/",
        escaped_name=name,
        id=1,
        **kwargs,
    )
    return user


def _config(tmp_path, **sections) -> Config:
    """What hub/configure.py gives a site (no mlworkshop.yaml is written: nothing may read one)."""
    c = Config()
    apply_spawner(c, MLWorkshopConfig.model_validate(sections), Site(tmp_path / "site"))
    c.WorkshopSpawner.isolate_users = False  # no system accounts from a unit test
    (tmp_path / "site" / "state").mkdir(parents=True, exist_ok=True)
    return c


def _spawner(cls, c: Config, name: str = "ann", **kwargs):
    user = _user(name)
    spawner = cls(config=c, user=user, **kwargs)
    user.spawners[""] = spawner
    return spawner


def test_backends_name_themselves_by_a_class_attribute():
    assert (LocalSpawner.backend_name, DockerWorkspaceSpawner.backend_name) == ("local", "docker")
    assert WorkshopSpawner.backend_name == ""  # the lifecycle is no backend


async def test_settings_from_jupyterhub_config_d_reach_the_spawn_form(tmp_path):
    """Issue 12, item 3: what configure set, changed as a jupyterhub_config.d/ file would, is what
    the spawner uses; the site has no mlworkshop.yaml the spawner could read instead."""
    c = _config(
        tmp_path, accelerators={"mode": "exclusive", "inventory": TWO_GPUS, "max_per_user": 1}
    )
    c.WorkshopSpawner.accelerators["max_per_user"] = 2  # an admin's jupyterhub_config.d/ file
    spawner = _spawner(LocalSpawner, c)
    form = await spawner.get_options_form()
    assert "1 × GPU" in form and "2 × GPU" in form, form
    assert not (tmp_path / "site" / "mlworkshop.yaml").exists()


def test_a_bad_section_in_traitlets_config_is_refused_with_its_key(tmp_path):
    c = _config(tmp_path)
    c.WorkshopSpawner.accelerators = {"mode": "sometimes"}
    with pytest.raises(
        TraitError, match=r"WorkshopSpawner.accelerators is not valid: accelerators.mode"
    ):
        _spawner(LocalSpawner, c)


class Recorded(WorkshopSpawner):
    """A thin backend, as small as one gets (the Kubernetes one adds its pod spec to this), that
    writes down each step the lifecycle takes."""

    backend_name = "recorded"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps: list[str] = []

    async def start_backend(self, granted):
        self.steps.append(f"backend start ({granted.profile.slug}, {len(granted.devices)} devices)")
        return ("127.0.0.1", 9)

    async def stop_backend(self, now=False):
        self.steps.append("backend stop")

    async def poll_backend(self):
        return None

    def cgroup_limits(self):
        return None  # the engine makes its own

    # record the lifecycle's own steps (each still does its real work)
    async def grant_devices(self):
        self.steps.append("devices")
        return await super().grant_devices()

    async def prepare_user_workspace(self):
        self.steps.append("workspace")
        return await super().prepare_user_workspace()

    async def make_cgroup(self):
        self.steps.append("cgroup")
        return await super().make_cgroup()

    async def usage_opened(self):
        self.steps.append("usage opened")
        await super().usage_opened()

    async def usage_last_sample(self, dead=False):
        self.steps.append("usage last sample")
        await super().usage_last_sample(dead)

    async def remove_cgroup(self):
        self.steps.append("cgroup removed")
        await super().remove_cgroup()

    async def release_devices(self):
        self.steps.append("devices released")
        await super().release_devices()

    async def usage_closed(self, reason):
        self.steps.append(f"usage closed ({reason})")
        await super().usage_closed(reason)


def _sessions(spawner):
    store = spawner.hub_usage.store()
    return store, store.open_sessions(spawner.user.name)


async def test_start_and_stop_go_in_the_stated_order(tmp_path):
    c = _config(tmp_path, accelerators={"mode": "exclusive", "inventory": TWO_GPUS})
    spawner = _spawner(Recorded, c, user_options={"profile": "gpu-1"})
    assert await spawner.start() == ("127.0.0.1", 9)
    assert spawner.steps == [
        "devices",
        "workspace",
        "cgroup",
        "backend start (gpu-1, 1 devices)",
        "usage opened",
    ]
    assert (tmp_path / "site" / "users" / "ann" / "work").is_dir()
    held = spawner.hub_accelerators.allocator.held_by_user("ann")
    assert [d.index for d in held[""]] == [0]
    store, [session] = _sessions(spawner)
    assert (session.backend, session.profile, session.n_devices) == ("recorded", "gpu-1", 1)

    spawner.steps.clear()
    await spawner.stop()
    assert spawner.steps == [
        "usage last sample",
        "backend stop",
        "cgroup removed",
        "devices released",
        "usage closed (stopped)",
    ]
    assert spawner.hub_accelerators.allocator.held_by_user("ann") == {}
    assert store.open_sessions("ann") == []

    spawner.steps.clear()
    await spawner.run_post_stop_hook()  # after a stop: nothing is closed twice
    assert spawner.steps == []


async def test_a_failed_backend_start_hands_the_devices_back(tmp_path):
    c = _config(tmp_path, accelerators={"mode": "exclusive", "inventory": TWO_GPUS})

    class Failing(Recorded):
        async def start_backend(self, granted):
            raise RuntimeError("the engine said no")

    spawner = _spawner(Failing, c, user_options={"profile": "gpu-1"})
    with pytest.raises(RuntimeError, match="the engine said no"):
        await spawner.start()
    assert spawner.steps == ["devices", "workspace", "cgroup", "devices released"]
    assert spawner.hub_accelerators.allocator.held_by_user("ann") == {}


async def test_a_server_found_dead_gives_back_its_devices_and_closes_as_died(tmp_path):
    c = _config(tmp_path, accelerators={"mode": "exclusive", "inventory": TWO_GPUS})
    spawner = _spawner(Recorded, c, user_options={"profile": "gpu-1"})
    await spawner.start()
    store, _ = _sessions(spawner)
    spawner.steps.clear()
    await spawner.run_post_stop_hook()  # JupyterHub found it dead: stop() is never called
    assert spawner.steps == ["usage last sample", "devices released", "usage closed (died)"]
    assert spawner.hub_accelerators.allocator.held_by_user("ann") == {}
    assert store.open_sessions("ann") == []


class _Server:
    def __init__(self, pending=None, active=True, status=None):
        self.pending, self.active, self._status = pending, active, status

    async def poll(self):
        return self._status


async def test_the_hub_decides_which_servers_are_alive():
    users = {
        "ann": SimpleNamespace(spawners={"": _Server(status=None)}),
        "ben": SimpleNamespace(spawners={"": _Server(status=0)}),  # killed: its process is gone
        "cat": SimpleNamespace(
            spawners={"": _Server(pending="spawn", status=0)}
        ),  # starting right now
        "dan": SimpleNamespace(spawners={"": _Server(active=False)}),
    }
    alive = hub_server_alive(users)
    assert [await alive(name, "") for name in ("ann", "ben", "cat", "dan", "eve")] == [
        True,
        False,
        True,
        False,
        False,
    ]
    assert await alive("ann", "other") is False


async def test_stale_devices_are_freed_by_the_hub_level_task(tmp_path):
    allocator = Allocator(
        f"sqlite:///{tmp_path / 'hub.sqlite'}", [Device("nvidia", 0), Device("nvidia", 1)]
    )
    allocator.allocate("ann", "", "nvidia", 1)
    allocator.allocate("ben", "", "nvidia", 1)

    async def alive(user, server):
        return user == "ann"

    task = StaleDevices(
        allocator, alive, every=0.05, log=SimpleNamespace(info=lambda *a: None, warning=print)
    )
    task.start()
    for _ in range(200):  # the periodic round, not a call of ours, frees ben's device
        if "ben" not in {h.username for u in allocator.usage() for h in u.holders}:
            break
        await asyncio.sleep(0.05)
    task._task.cancel()
    holders = {h.username for u in allocator.usage() for h in u.holders}
    assert holders == {"ann"}
    allocator.close()


def test_a_quota_note_keeps_a_form_with_the_one_profile_left():
    cpu = Profile("cpu", "CPU only", None, 0, 2, "4G", "No accelerator")
    form = render_options_form(
        [cpu], (), "GPU/NPU choices are hidden by your quota: 0 GPU hours left."
    )
    assert form.startswith(
        '<p class="alert alert-warning mlw-quota-note">GPU/NPU choices are hidden'
    )
    assert 'type="radio" name="profile" id="mlw-profile-cpu" value="cpu" checked' in form
    assert render_options_form([cpu]) == ""  # no note: nothing to choose, no form
    assert (
        render_options_form([], (), "all hidden")
        == '<p class="alert alert-warning mlw-quota-note">all hidden</p>'
    )


def test_the_docker_backend_picks_a_profiles_image_as_the_config_names_it(tmp_path):
    c = _config(
        tmp_path,
        spawner={
            "backend": "docker",
            "docker": {
                "images": [
                    {"name": "default", "image": "localhost/u:1"},
                    {"name": "cuda", "image": "localhost/u:cuda"},
                ],
                "profile_images": {"gpu": "cuda"},
            },
        },
    )
    cfg_docker = MLWorkshopConfig.model_validate(
        {
            "spawner": {
                "backend": "docker",
                "docker": {
                    "images": [
                        {"name": "default", "image": "localhost/u:1"},
                        {"name": "cuda", "image": "localhost/u:cuda"},
                    ],
                    "profile_images": {"gpu": "cuda"},
                },
            }
        }
    ).spawner.docker
    for slug in ("gpu-2", "cpu", None):
        spawner = _spawner(
            DockerWorkspaceSpawner, c, user_options={"profile": slug} if slug else {}
        )
        assert spawner.pick_image() == cfg_docker.image_for(cfg_docker.image_name_for_profile(slug))


def test_a_bad_section_from_jupyterhub_config_d_stops_the_hub_with_its_key(tmp_path):
    from mlworkshop.hub.lifecycle import check_spawner_sections

    c = _config(tmp_path)
    check_spawner_sections(c)  # what configure set is valid
    c.WorkshopSpawner.usage["quotas"] = {"default": {"gpu_hours_per_week": -1}}
    with pytest.raises(
        SystemExit,
        match=r"WorkshopSpawner.usage is not valid: usage.quotas.default.gpu_hours_per_week",
    ):
        check_spawner_sections(c)


@pytest.mark.parametrize("cls", [LocalSpawner, DockerWorkspaceSpawner])
def test_every_option_of_ours_is_configurable_and_explained(cls):
    ours = {
        name: trait
        for klass in cls.__mro__
        if klass.__module__.startswith("mlworkshop.")
        for name, trait in klass.class_own_traits().items()
    }
    assert {"site_root", "accelerators", "usage", "usage_db_url", "hub_db_url"} <= set(ours)
    for name, trait in ours.items():
        assert trait.metadata.get("config") is True, f"{cls.__name__}.{name} is not config=True"
        assert trait.help and len(trait.help) > 15, f"{cls.__name__}.{name} has no help text"
