"""`mlworkshop config set hub.https.cert PATH` (and .key) checks at set time that the file is
there and can be read: a typo is refused with the key, the value and the fix, and nothing is
written (config/setchecks.py)."""

from __future__ import annotations

from mlworkshop.config import load_config

from .clirun import assert_refused, mlw_here


def test_a_missing_certificate_is_refused_at_set_time_and_nothing_written(site, tmp_path):
    missing = tmp_path / "fullchain.pem"
    run = mlw_here(site, "config", "set", "hub.https.cert", str(missing))
    assert_refused(run, f"hub.https.cert = '{missing}': no such file", "mlworkshop config set")
    assert load_config(site, {}).hub.https.cert is None


def test_a_folder_or_missing_key_is_refused(site, tmp_path):
    run = mlw_here(site, "config", "set", "hub.https.key", str(tmp_path))
    assert_refused(run, f"hub.https.key = '{tmp_path}': is a folder, not a PEM file")
    run = mlw_here(site, "config", "set", "hub.https.key", str(tmp_path / "privkey.pem"))
    assert_refused(run, "no such file")
    assert load_config(site, {}).hub.https.key is None


def test_a_readable_file_and_self_signed_are_accepted(site, tmp_path):
    cert = tmp_path / "fullchain.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")  # its contents are `up`'s to check
    run = mlw_here(site, "config", "set", "hub.https.cert", str(cert))
    assert run.returncode == 0, run
    assert load_config(site, {}).hub.https.cert == str(cert)
    run = mlw_here(site, "config", "set", "hub.https.cert", "self-signed")
    assert run.returncode == 0, run
