"""One reading of memory sizes (mlworkshop/sizes.py), with JupyterHub's ByteSpecification meaning:
the config's sections, the spawn profiles, the cgroups and DockerSpawner all agree."""

from __future__ import annotations

import pytest
from jupyterhub.traitlets import ByteSpecification
from traitlets import HasTraits

from mlworkshop.config.model import MLWorkshopConfig
from mlworkshop.sizes import normalize_size, parse_bytes, scale_size


class _Spec(HasTraits):
    mem = ByteSpecification()


@pytest.mark.parametrize("text", ["512M", "4G", "1.5G", "2T", "100K", "0.5T", "3.25G"])
def test_the_canonical_form_means_what_jupyterhub_says(text):
    assert normalize_size(text) == text
    assert parse_bytes(text) == _Spec(mem=text).mem  # what a ByteSpecification trait makes of it


@pytest.mark.parametrize("value", [1024, 1.5 * 2**30, 0])
def test_numbers_are_bytes_as_in_jupyterhub(value):
    assert parse_bytes(value) == _Spec(mem=value).mem


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("4g", "4G"),
        ("4GB", "4G"),
        ("4GiB", "4G"),
        (" 512m ", "512M"),
        ("100", "100"),
        ("100B", "100"),
    ],
)
def test_forgiving_input_canonical_output(text, canonical):
    assert normalize_size(text) == canonical
    assert parse_bytes(text) == parse_bytes(canonical)


@pytest.mark.parametrize("text", ["lots", "4X", "G", "1..5G", "-1G", "4 G", "", "1e3G"])
def test_nonsense_is_refused_with_the_forms_it_takes(text):
    with pytest.raises(ValueError, match="size such as 512M"):
        normalize_size(text)


def test_parse_bytes():
    assert (
        parse_bytes("1.5G") == 3 * 2**29
        and parse_bytes("512M") == 2**29
        and parse_bytes("100") == 100
    )
    assert parse_bytes(None) is None


def test_scale_size():
    assert (
        scale_size("16G", 2) == "32G"
        and scale_size("1.5G", 3) == "4.5G"
        and scale_size("512M", 1) == "512M"
    )
    assert scale_size(None, 4) is None
    assert scale_size("1000000K", 2) == "2000000K"  # never '2e+06K'
    assert parse_bytes(scale_size("1.5G", 3)) == 3 * parse_bytes("1.5G")


@pytest.mark.parametrize(
    "where", ["accelerators.profiles.cpu", "accelerators.profiles.per_device", "spawner.docker"]
)
def test_every_section_takes_and_normalizes_sizes_alike(where):
    """The same sizes are accepted (and refused) wherever mem_limit stands in mlworkshop.yaml."""

    def cfg_with(value):
        data: dict = {}
        node = data
        for part in where.split("."):
            node = node.setdefault(part, {})
        node["mem_limit"] = value
        section = MLWorkshopConfig.model_validate(data)
        for part in where.split("."):
            section = getattr(section, part)
        return section.mem_limit

    assert cfg_with("64g") == "64G" and cfg_with("1.5GiB") == "1.5G" and cfg_with(None) is None
    with pytest.raises(ValueError, match="size such as 512M"):
        cfg_with("lots")


@pytest.mark.parametrize("section", ["hub", "usage"])
def test_database_urls_are_checked_alike(section):
    """hub.db_url and usage.db_url take the same schemes (the ones db.make_engine, the migrations
    and backups are tested with)."""
    for url in (
        "sqlite:////srv/x.sqlite",
        "postgresql://u:p@db/x",
        "postgresql+psycopg://u@db/x",
        "postgresql+psycopg2://u@db/x",
    ):
        assert (
            getattr(MLWorkshopConfig.model_validate({section: {"db_url": url}}), section).db_url
            == url
        )
    assert (
        getattr(MLWorkshopConfig.model_validate({section: {"db_url": ""}}), section).db_url is None
    )
    for url in ("mysql://u@db/x", "oracle://db", "/srv/x.sqlite"):
        with pytest.raises(ValueError, match="sqlite:// or postgresql://"):
            MLWorkshopConfig.model_validate({section: {"db_url": url}})
