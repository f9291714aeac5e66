"""fastpath.static.precompress: a .gz beside each compressible file, written once and kept fresh."""

from __future__ import annotations

import gzip
import os

from mlworkshop.fastpath.static import precompress


def test_compresses_once_and_again_only_what_changed(tmp_path):
    (tmp_path / "sub").mkdir()
    bundle = tmp_path / "sub" / "main.abc123.js"
    bundle.write_text("console.log('hello');\n" * 500)
    (tmp_path / "tiny.js").write_text("x")
    (tmp_path / "font.woff2").write_bytes(os.urandom(4096))
    (tmp_path / "link.js").symlink_to(bundle)

    assert precompress([tmp_path]) == (1, 0)
    packed = tmp_path / "sub" / "main.abc123.js.gz"
    assert gzip.decompress(packed.read_bytes()) == bundle.read_bytes()
    assert oct(packed.stat().st_mode & 0o777) == "0o644"
    assert not (tmp_path / "tiny.js.gz").exists() and not (tmp_path / "font.woff2.gz").exists()
    assert not (tmp_path / "link.js.gz").exists(), "links are not followed"
    assert precompress([tmp_path]) == (0, 1)

    bundle.write_text("console.log('changed');\n" * 500)
    os.utime(bundle, (packed.stat().st_mtime + 10,) * 2)
    assert precompress([tmp_path]) == (1, 0)
    assert gzip.decompress(packed.read_bytes()) == bundle.read_bytes()


def test_a_folder_it_cannot_write_is_left_alone(tmp_path):
    (tmp_path / "main.js").write_text("x = 1;\n" * 1000)
    os.chmod(tmp_path, 0o555)
    try:
        if os.access(tmp_path, os.W_OK):  # root writes anyway: try as nobody instead
            pid = os.fork()
            if pid == 0:
                os.setgid(65534)
                os.setuid(65534)
                os._exit(0 if precompress([tmp_path]) == (0, 0) else 1)
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        else:
            assert precompress([tmp_path]) == (0, 0)
        assert not (tmp_path / "main.js.gz").exists()
    finally:
        os.chmod(tmp_path, 0o755)
