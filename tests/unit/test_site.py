"""The site folder (site.py): secrets, init, content elsewhere."""

from __future__ import annotations

import stat

from mlworkshop.config import set_key
from mlworkshop.site import Site, bundled_lessons, init_site


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secret_is_made_once_private_and_then_kept(tmp_path):
    site = Site(tmp_path / "site")
    first = site.secret("api_token")
    assert (
        len(first) == 64
        and mode(site.secrets) == 0o700
        and mode(site.secrets / "api_token") == 0o600
    )
    assert site.secret("api_token") == first
    assert Site(tmp_path / "site").secret("api_token") == first  # a new process reads the same one
    assert site.secret("other") != first


def test_init_reports_what_it_did_and_then_nothing(tmp_path):
    site = Site(tmp_path / "site")
    done = init_site(site)
    assert any("wrote" in line for line in done) and any("cookie_secret" in line for line in done)
    assert init_site(site) == []


def test_bundled_lessons_are_copied_only_into_an_empty_lessons_folder(tmp_path):
    bundled = bundled_lessons()
    site = Site(tmp_path / "site")
    init_site(site)
    lessons = site.root / "content" / "lessons"
    if bundled is not None:
        assert {p.name for p in lessons.iterdir()} == {p.name for p in bundled.iterdir()}
    mine = Site(tmp_path / "site2")
    (mine.root / "content" / "lessons").mkdir(parents=True)
    (mine.root / "content" / "lessons" / "only-mine.ipynb").write_text("{}")
    init_site(mine)
    assert [p.name for p in (mine.root / "content" / "lessons").iterdir()] == ["only-mine.ipynb"]


def test_content_can_live_outside_the_site(tmp_path):
    site = Site(tmp_path / "site")
    init_site(site)
    elsewhere = tmp_path / "course-content"
    set_key(site.root, "workspace.content_dir", str(elsewhere))
    init_site(site)
    for kind in ("lessons", "datasets", "models"):
        assert (elsewhere / kind).is_dir()


def test_config_file_is_private_and_an_old_open_one_is_tightened(tmp_path):
    site = Site(tmp_path / "site")
    init_site(site)
    assert mode(site.config_file) == 0o600
    site.config_file.chmod(0o644)  # a site made before this rule
    text = site.config_file.read_text()
    assert any("readable by its owner only" in line for line in init_site(site))
    assert mode(site.config_file) == 0o600 and site.config_file.read_text() == text
    set_key(site.root, "hub.db_url", "postgresql://hub:s3cret@127.0.0.1:5432/hub")
    assert mode(site.config_file) == 0o600
