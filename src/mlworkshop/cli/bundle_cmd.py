"""`mlworkshop bundle create | install | verify`: one folder that installs the hub offline
(ops/bundle.py makes it, ops/bundle_install.py installs it).

Wire it with `app.add_typer(bundle_app, name="bundle")` in cli/main.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..ops import bundle_install

bundle_app = typer.Typer(
    help="An offline install bundle: wheels, the proxy, lessons, images, checksums.",
    no_args_is_help=True,
)


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@bundle_app.command("create")
def create(
    out: Annotated[Path, typer.Argument(help="New folder for the bundle.")],
    extras: Annotated[
        list[str] | None,
        typer.Option(
            "--extras",
            help="Extras to include, comma-separated: lessons (numpy, scikit-learn, matplotlib, "
            "torch: with PyPI's torch, the CUDA build, several GB), gpu. Default: none.",
        ),
    ] = None,
    images: Annotated[
        list[str] | None,
        typer.Option(
            "--images", help="Container images to save into the bundle (repeat or comma)."
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Resolve the newest versions pyproject.toml allows, not this environment's.",
        ),
    ] = False,
    extra_index_url: Annotated[
        list[str] | None,
        typer.Option(
            "--extra-index-url",
            help="Another package index to take wheels from (e.g. one with CPU-only torch).",
        ),
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="docker or podman, for --images.")
    ] = None,
) -> None:
    """Make a bundle on a connected machine, for machines with this Python and architecture."""
    from ..ops.bundle import create as make

    made = make(
        out,
        _split(extras),
        _split(images),
        fresh=fresh,
        extra_index_urls=extra_index_url or [],
        engine=engine,
        say=typer.echo,
    )
    times = ", ".join(f"{k} {v:.0f} s" for k, v in made.seconds.items())
    typer.echo(
        f"bundle {made.path}: {len(made.pins)} pinned packages, {made.files} files, "
        f"{made.size / 1e6:.1f} MB ({times})"
    )
    typer.echo(f"on the offline machine, in a clone of this commit: make up BUNDLE={made.path}")


@bundle_app.command("install")
def install(
    bundle: Annotated[Path, typer.Argument(help="The bundle folder.")],
    no_images: Annotated[
        bool, typer.Option("--no-images", help="Do not load the bundle's container images.")
    ] = False,
) -> None:
    """Install a bundle into this checkout (its .venv and node_modules), without network."""
    from ..ops.bundle import REPO

    bundle_install.install(bundle, REPO, images=not no_images, say=typer.echo)


@bundle_app.command("verify")
def verify(bundle: Annotated[Path, typer.Argument(help="The bundle folder.")]) -> None:
    """Check a bundle: this machine's Python and architecture, and every file's checksum."""
    manifest = bundle_install.read_manifest(bundle)
    bundle_install.check_target(manifest, bundle_install.Target.here())
    bundle_install.verify(bundle, manifest)
    typer.echo(f"{bundle}: {len(manifest['files'])} files, all checksums match")
