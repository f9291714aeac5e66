"""Spawn profiles: the choices a user may take right now (CPU only, 1 x GPU, 2 x GPU, ... NPU).

Built fresh for every spawn page from the config, the inventory, the user's limit and what is
free, so the page never offers what the hub would then refuse. The same list validates the
submitted choice on the server side: a crafted form asking for 8 GPUs is refused here, and the
allocator enforces the limit again inside its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..i18n import _, ngettext
from ..sizes import parse_bytes, scale_size
from .allocator import Allocator, Limit, NoDeviceFree
from .inventory import KIND_LABEL, Device
from .limits import effective_limit

SLUG_PREFIX = {"nvidia": "gpu", "ascend": "npu"}
FORM_FIELD = "profile"


@dataclass(frozen=True)
class Profile:
    slug: str  # cpu, gpu-1, gpu-2, npu-1, shared
    display_name: str  # "1 × GPU"
    kind: str | None  # nvidia | ascend | None (CPU only, or shared mode)
    count: int  # devices to allocate (0: none; shared mode allocates nothing)
    cpu_limit: float | None
    mem_limit: str | None  # "16G", JupyterHub's ByteSpecification form
    description: str = ""
    shared: bool = False  # shared mode: the server sees every device, none is allocated

    @property
    def resources(self) -> str:
        parts = []
        if self.cpu_limit is not None:
            cpus = f"{self.cpu_limit:g}"
            parts.append(ngettext("{n} CPU", "{n} CPUs", 1 if cpus == "1" else 2).format(n=cpus))
        if self.mem_limit is not None:
            parts.append(_("{size} memory").format(size=self.mem_limit))
        return " · ".join(parts)


class InvalidChoice(ValueError):
    """A submitted profile this user may not take now; str() lists what they may take."""


def _scale_cpu(cpu: float | None, factor: int) -> float | None:
    return None if cpu is None else cpu * factor


def server_resources(
    profiles_cfg: Any, n_devices: int, shared: bool = False
) -> tuple[float | None, int | None]:
    """CPUs and bytes of memory of a server holding `n_devices` allocated devices (0: CPU only),
    or of shared mode's one profile (`shared`: every device, none allocated; the per-device
    limits once, as profiles_for offers it). The one rule behind what the usage API reports as a
    user's limits and what the local backend's cgroup enforces, so the two agree.
    `profiles_cfg`: accelerators.profiles."""
    if n_devices or shared:
        per, k = profiles_cfg.per_device, n_devices or 1
        return _scale_cpu(per.cpu_limit, k), parse_bytes(scale_size(per.mem_limit, k))
    return profiles_cfg.cpu.cpu_limit, parse_bytes(profiles_cfg.cpu.mem_limit)


def _describe_devices(devices: Sequence[Device]) -> str:
    names = sorted({d.name for d in devices if d.name})
    mem = sorted({d.memory_mib for d in devices if d.memory_mib})
    text = " / ".join(names)
    if len(mem) == 1:
        each = _("{size} GiB each").format(size=f"{mem[0] / 1024:.0f}")
        text += f"{', ' if text else ''}{each}"
    return text


def profiles_for(
    username: str,
    groups: Iterable[str],
    is_admin: bool,
    cfg: Any,
    devices: Sequence[Device],
    allocator: Allocator | None = None,
    server_name: str = "",
    only_free: bool = True,
) -> list[Profile]:
    """What this user may start now. `cfg`: AcceleratorsConfig (or the whole config).

    only_free=False lists what the limit and the hardware allow even if busy: use that list to
    validate a submitted choice, so a busy device gets the allocator's "in use since" message
    rather than a bare refusal. Holdings of `server_name` itself do not count (it is restarting).
    """
    acc = getattr(cfg, "accelerators", cfg)
    cpu = acc.profiles.cpu
    per = acc.profiles.per_device
    cpu_only = Profile(
        "cpu", _("CPU only"), None, 0, cpu.cpu_limit, cpu.mem_limit, _("No accelerator")
    )
    if not devices:
        return [cpu_only]
    if acc.mode == "shared":
        labels = ", ".join(
            f"{len([d for d in devices if d.kind == k])} × {KIND_LABEL[k]}"
            for k in sorted({d.kind for d in devices})
        )
        return [
            Profile(
                "shared",
                _("Shared: {devices}").format(devices=labels),
                None,
                0,
                per.cpu_limit,
                per.mem_limit,
                _("Every device, shared with other users ({devices})").format(
                    devices=_describe_devices(devices)
                ),
                shared=True,
            )
        ]
    limit: Limit = effective_limit(username, groups, is_admin, acc)
    own: dict[str, int] = {}
    held_elsewhere = 0
    if allocator is not None:
        for name, held in allocator.held_by_user(username).items():
            if name == server_name:
                for d in held:
                    own[d.kind] = own.get(d.kind, 0) + 1
            else:
                held_elsewhere += len(held)
    room = None if limit.max_devices is None else max(0, limit.max_devices - held_elsewhere)
    profiles = [cpu_only]
    for kind in sorted({d.kind for d in devices}):
        of_kind = [d for d in devices if d.kind == kind]
        available = len(of_kind)
        if only_free and allocator is not None:
            available = min(len(of_kind), allocator.free_count(kind) + own.get(kind, 0))
        most = available if room is None else min(available, room)
        label = KIND_LABEL[kind]
        for k in range(1, most + 1):
            profiles.append(
                Profile(
                    f"{SLUG_PREFIX[kind]}-{k}",
                    f"{k} × {label}",
                    kind,
                    k,
                    _scale_cpu(per.cpu_limit, k),
                    scale_size(per.mem_limit, k),
                    _describe_devices(of_kind),
                )
            )
    return profiles


def validate_choice(slug: str | None, allowed: Sequence[Profile]) -> Profile:
    """The Profile for a submitted slug, or InvalidChoice. No slug: the first (default) one."""
    if not allowed:
        raise InvalidChoice(_("No server profile is available to you."))
    if slug in (None, ""):
        return allowed[0]
    for profile in allowed:
        if profile.slug == slug:
            return profile
    choices = ", ".join(f"{p.slug} ({p.display_name})" for p in allowed)
    shown = str(slug)[:40]
    raise InvalidChoice(
        _("The server option {option} is not available to you. You may choose: {choices}.").format(
            option=repr(shown), choices=choices
        )
    )


def why_not_offered(
    allowed: Sequence[Profile], offered: Sequence[Profile], allocator: Allocator | None
) -> list[str]:
    """A sentence for each kind of device the user may use (`allowed`, from only_free=False) of
    which none is offered now because all are held: who holds them and since when. Shown on the
    spawn page, so a student left with "CPU only" knows why and when to come back. A kind hidden
    for another reason while some are free (a spent quota says so itself) gets none."""
    if allocator is None:
        return []
    offered_kinds = {p.kind for p in offered}
    notes = []
    for kind in dict.fromkeys(
        p.kind for p in allowed if p.kind is not None and p.kind not in offered_kinds
    ):
        usage = allocator.usage(kind)
        if not any(u.free_slots for u in usage):
            notes.append(str(NoDeviceFree(kind, 1, usage)))
    return notes


def options_from_form(formdata: Mapping[str, Any]) -> dict[str, str]:
    """JupyterHub's form data (each value a list) -> {"profile": slug}."""
    value = formdata.get(FORM_FIELD)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return {FORM_FIELD: str(value)} if value not in (None, "") else {}
