"""The TensorFlow variants of the user image (issue 15, item 4). No registry is reachable where
this project is tested, so the bases cannot be pulled and the image is not built here: what is
checked is what `images build` would run and that the Dockerfile has the stages it names (the
whole file is parsed by test_deploy_files.py)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from mlworkshop.cli.images_cmd import DOCKER_DIR, TARGETS, archive_name, images_app


def test_tensorflow_targets_build_their_own_stage():
    result = CliRunner().invoke(
        images_app, ["build", "user-tensorflow", "user-tensorflow-cuda", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert (
        "Dockerfile.user -t localhost/mlworkshop-user:tensorflow --build-arg VARIANT=tensorflow "
        in out
    )
    assert (
        "-t localhost/mlworkshop-user:tensorflow-cuda --build-arg VARIANT=tensorflow-cuda " in out
    )
    dockerfile = (DOCKER_DIR / "Dockerfile.user").read_text()
    stages = dict(re.findall(r"^FROM \$\{(\w+)\} AS base-([\w-]+)$", dockerfile, re.M))
    stages = {stage: arg for arg, stage in stages.items()}
    assert stages["tensorflow"] == "TF_BASE" and stages["tensorflow-cuda"] == "TF_CUDA_BASE"
    assert "ARG TF_BASE=quay.io/jupyter/tensorflow-notebook:" in dockerfile
    # what `images save` names its archive, so a bundle can carry it (bundle create --images)
    assert archive_name(TARGETS["user-tensorflow"][1]) == "mlworkshop-user_tensorflow.tar.gz"
