"""The dashboards' HTML: server-rendered, no external assets (class networks are often offline),
charts as inline SVG. Every number a test reads carries a data-testid."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Sequence

from ..i18n import _, current_language, format_datetime, format_month_day, format_number

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans CJK SC",sans-serif;margin:0;color:#222;background:#f7f7f8}
header{background:#1f2937;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#cbd5e1;text-decoration:none}header a:hover{color:#fff}header .who{margin-left:auto;color:#cbd5e1}
main{padding:1rem 1.2rem;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:.7rem 1rem;min-width:10rem}
.card .v{font-size:1.5rem;font-weight:600}.card .l{color:#6b7280;font-size:.85rem}
table{border-collapse:collapse;background:#fff;min-width:30rem}th,td{border:1px solid #e5e7eb;padding:.35rem .6rem;text-align:left}
th{background:#f3f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fef3c7;border:1px solid #f59e0b;padding:.6rem 1rem;border-radius:6px}
.over{background:#fee2e2;border:1px solid #ef4444;padding:.6rem 1rem;border-radius:6px}
button.stop{background:#dc2626;color:#fff;border:0;border-radius:4px;padding:.25rem .7rem;cursor:pointer}
svg text{font-size:10px;fill:#374151}.muted{color:#6b7280}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: float | None, digits: int = 2) -> str:
    """A number the reader's way (mlworkshop/i18n.py), in the request's language."""
    return format_number(value, digits)


def when(iso: str) -> str:
    """A stored UTC time (ISO 8601, 'Z') as the reader writes dates; as it is if unreadable."""
    try:
        return format_datetime(dt.datetime.fromisoformat(iso.removesuffix("Z")))
    except (ValueError, AttributeError):
        return str(iso)


def day(iso_date: str) -> str:
    try:
        return format_month_day(dt.date.fromisoformat(iso_date))
    except ValueError:
        return iso_date


def page(title: str, body: str, prefix: str, who: str, admin: bool, hub_url: str = "/hub/") -> str:
    hub, mine, everyone, brand = _("Hub"), _("My usage"), _("All usage"), _("mlworkshop usage")
    links = f'<a href="{esc(hub_url)}home">{esc(hub)}</a><a href="{esc(prefix)}me">{esc(mine)}</a>'
    if admin:
        links += f'<a href="{esc(prefix)}admin">{esc(everyone)}</a>'
    links += f'<a href="{esc(prefix)}docs">API</a>'
    return (
        f'<!doctype html><html lang="{esc(current_language())}"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f'<body><header><strong>{esc(brand)}</strong>{links}<span class="who" data-testid="who">{esc(who)}</span>'
        f"</header><main>{body}</main></body></html>"
    )


def bar_chart(
    series: Sequence[tuple[str, float]], label: str, testid: str, color: str = "#2563eb"
) -> str:
    """A small SVG bar chart of (day, value); each bar carries its value for tests and tooltips."""
    width, height, pad = 640, 160, 24
    top = max((v for _, v in series), default=0.0) or 1.0
    n = max(1, len(series))
    slot = (width - 2 * pad) / n
    bars = []
    for i, (key, value) in enumerate(series):
        h = (height - 2 * pad) * value / top
        x = pad + i * slot + slot * 0.1
        y = height - pad - h
        bars.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}" fill="{color}" '
            f'data-day="{esc(key)}" data-value="{value:.4f}"><title>{esc(key)}: {value:.2f}</title></rect>'
        )
        if n <= 16 or i % max(1, n // 8) == 0:
            bars.append(f'<text x="{x:.1f}" y="{height - 8}">{esc(day(key))}</text>')
    caption = _("{label} (max {top})").format(label=label, top=num(top))
    return (
        f"<figure><figcaption>{esc(caption)}</figcaption>"
        f'<svg data-testid="{esc(testid)}" width="{width}" height="{height}" role="img" aria-label="{esc(label)}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#9ca3af"/>'
        f"{''.join(bars)}</svg></figure>"
    )


def cards(items: Sequence[tuple[str, str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v" data-testid="{esc(t)}">{esc(v)}</div><div class="l">{esc(label)}</div></div>'
            for t, v, label in items
        )
        + "</div>"
    )


def admin_page(
    *,
    prefix: str,
    who: str,
    week: dict,
    month_days: list[tuple[str, float, float]],
    top: list,
    live: list[dict],
    currency: str,
    xsrf: str,
    sample_every: float,
) -> str:
    body = [
        "<h1>" + esc(_("Usage: everyone")) + "</h1>",
        cards(
            [
                ("week-cpu-hours", num(week["cpu_hours"]), _("CPU-hours this week")),
                ("week-gpu-hours", num(week["gpu_hours"]), _("GPU/NPU device-hours this week")),
                ("week-mem-gib-hours", num(week["mem_gib_hours"]), _("memory GiB-hours this week")),
                ("week-cost", f"{num(week['cost'])} {currency}", _("cost this week")),
                ("live-count", str(len(live)), _("servers running")),
            ]
        ),
    ]
    body.append("<h2>" + esc(_("Usage over the last 30 days")) + "</h2>")
    body.append(
        bar_chart(
            [(d, g) for d, g, _c in month_days],
            _("GPU/NPU device-hours per day"),
            "chart-gpu",
            "#7c3aed",
        )
    )
    body.append(bar_chart([(d, c) for d, _g, c in month_days], _("CPU-hours per day"), "chart-cpu"))
    body.append("<h2>" + esc(_("Top users this week")) + "</h2>")
    rows = "".join(
        f'<tr data-testid="top-{esc(r.key)}"><td>{esc(r.key)}</td><td class="n">{r.sessions}</td>'
        f'<td class="n" data-testid="top-{esc(r.key)}-gpu">{num(r.gpu_hours + r.npu_hours)}</td>'
        f'<td class="n" data-testid="top-{esc(r.key)}-cpu">{num(r.cpu_hours)}</td>'
        f'<td class="n">{num(r.mem_gib_hours)}</td><td class="n" data-testid="top-{esc(r.key)}-cost">{num(r.cost)}</td></tr>'
        for r in top
    )
    heads = [_("user"), _("sessions"), _("device-hours"), _("CPU-hours"), _("GiB-hours")]
    heads.append(_("cost ({currency})").format(currency=currency))
    nobody = "<tr><td colspan=6 class=muted>" + esc(_("nobody yet")) + "</td></tr>"
    body.append(
        '<table data-testid="top-users"><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in heads)
        + f"</tr>{rows or nobody}</table>"
    )
    sampled = _("Sampled every {seconds} s.").format(seconds=f"{sample_every:g}")
    body.append("<h2>" + esc(_("Live servers")) + f"</h2><p class='muted'>{esc(sampled)}</p>")
    rows, stop = [], _("Stop")
    for s in live:
        key = f"{s['user']}/{s['server']}" if s["server"] else s["user"]
        rows.append(
            f'<tr data-testid="live-{esc(key)}"><td>{esc(key)}</td><td>{esc(s["profile"] or "")}</td>'
            f"<td>{esc(', '.join(s['devices']) or '—')}</td><td>{esc(when(s['start']))}</td>"
            f'<td class="n" data-testid="live-{esc(key)}-cpu">{num(s["cpu_percent"], 1)}</td>'
            f'<td class="n" data-testid="live-{esc(key)}-mem">{num(s["mem_mib"], 0)}</td>'
            f'<td><button class="stop" data-user="{esc(s["user"])}" data-server="{esc(s["server"])}">{esc(stop)}</button></td></tr>'
        )
    body.append(
        '<table data-testid="live-servers"><tr>'
        + _server_heads()
        + "<th></th></tr>"
        + ("".join(rows) or "<tr><td colspan=7 class=muted>" + esc(_("none")) + "</td></tr>")
        + "</table>"
    )
    # the button's messages, in the page's language, for the script below (names go in at {user})
    said = json.dumps(
        {
            "ask": _("Stop {user}'s server?"),
            "stopping": _("Stopping {user}'s server."),
            "refused": _("Refused: {status}"),
        }
    ).replace("<", "\\u003c")
    body.append(f"""<p id="stop-result" data-testid="stop-result"></p>
<script>
const SAID = {said};
document.querySelectorAll("button.stop").forEach(function (b) {{
  b.addEventListener("click", async function () {{
    if (!confirm(SAID.ask.replace("{{user}}", b.dataset.user))) return;
    const url = "{esc(prefix)}api/servers/" + encodeURIComponent(b.dataset.user) + "/stop?server=" + encodeURIComponent(b.dataset.server);
    const r = await fetch(url, {{method: "POST", headers: {{"X-XSRF-Token": "{esc(xsrf)}"}}, credentials: "same-origin"}});
    document.getElementById("stop-result").textContent = r.ok ? SAID.stopping.replace("{{user}}", b.dataset.user) : SAID.refused.replace("{{status}}", r.status);
    if (r.ok) b.disabled = true;
  }});
}});
</script>""")
    return page(_("Usage: everyone"), "".join(body), prefix, who, True)


def user_page(
    *,
    prefix: str,
    who: str,
    admin: bool,
    limits: dict,
    used: dict,
    remaining: dict,
    week_row,
    running: list[dict],
    currency: str,
    verdict: dict,
) -> str:
    body = ["<h1>" + esc(_("My usage: {user}").format(user=who)) + "</h1>"]
    if verdict["state"] == "over":
        body.append(f'<p class="over" data-testid="quota-state">{esc(verdict["message"])}</p>')
    elif verdict["state"] == "warn" or verdict["message"]:  # e.g. her server ran out of memory
        body.append(f'<p class="warn" data-testid="quota-state">{esc(verdict["message"])}</p>')
    body.append(
        cards(
            [
                (
                    "my-cpu-hours",
                    num(week_row.cpu_hours if week_row else 0.0),
                    _("CPU-hours this week"),
                ),
                (
                    "my-gpu-hours",
                    num((week_row.gpu_hours + week_row.npu_hours) if week_row else 0.0),
                    _("GPU/NPU device-hours this week"),
                ),
                (
                    "my-mem-gib-hours",
                    num(week_row.mem_gib_hours if week_row else 0.0),
                    _("memory GiB-hours this week"),
                ),
                (
                    "my-cost",
                    f"{num(week_row.cost if week_row else 0.0)} {currency}",
                    _("cost this week"),
                ),
            ]
        )
    )
    note = _("Limits from {source}; weeks start Monday 00:00 UTC.").format(source=limits["source"])
    body.append("<h2>" + esc(_("My quota")) + f'</h2><p class="muted">{esc(note)}</p>')
    rows, no_limit = [], _("no limit")
    for key, label, unit in (
        ("gpu_hours_per_week", _("GPU/NPU device-hours per week"), "gpu_hours"),
        ("cpu_hours_per_week", _("CPU-hours per week"), "cpu_hours"),
        ("max_servers", _("servers at once"), "servers"),
        ("max_devices", _("devices at once"), "devices"),
    ):
        limit = limits[key]
        rows.append(
            f'<tr><td>{esc(label)}</td><td class="n" data-testid="quota-{esc(key)}">'
            f"{esc(no_limit) if limit is None else num(limit)}</td>"
            f'<td class="n" data-testid="used-{esc(unit)}">{num(used[unit])}</td>'
            f'<td class="n" data-testid="left-{esc(unit)}">{"—" if remaining[unit] is None else num(remaining[unit])}</td></tr>'
        )
    body.append(
        '<table data-testid="my-quota"><tr>'
        + "".join(f"<th>{esc(h)}</th>" for h in (_("limit"), _("allowed"), _("used"), _("left")))
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    body.append("<h2>" + esc(_("My running servers")) + "</h2>")
    default = _("(default)")
    rows = "".join(
        f'<tr data-testid="mine-{esc(s["server"] or "default")}"><td>{esc(s["server"] or default)}</td>'
        f"<td>{esc(s['profile'] or '')}</td><td>{esc(', '.join(s['devices']) or '—')}</td><td>{esc(when(s['start']))}</td>"
        f'<td class="n">{num(s["cpu_percent"], 1)}</td><td class="n">{num(s["mem_mib"], 0)}</td></tr>'
        for s in running
    )
    body.append(
        '<table data-testid="my-servers"><tr>'
        + _server_heads()
        + "</tr>"
        + (rows or "<tr><td colspan=6 class=muted>" + esc(_("none")) + "</td></tr>")
        + "</table>"
    )
    return page(_("My usage"), "".join(body), prefix, who, admin)


def _server_heads() -> str:
    heads = (_("server"), _("profile"), _("devices"), _("since (UTC)"), _("CPU %"), _("memory MiB"))
    return "".join(f"<th>{esc(h)}</th>" for h in heads)


def error_page(prefix: str, who: str, status: int, message: str) -> str:
    return page(
        f"{status}",
        f'<h1>{status}</h1><p data-testid="error">{esc(message)}</p>',
        prefix,
        who,
        False,
    )
