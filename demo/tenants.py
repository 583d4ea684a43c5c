"""The demo's tenants: two business lines served from the demo's own lake (docs/data-products.md).

Before the first night it declares, in `$TICKLAKE_HOME/tenants.toml` (the default tenants file, so `python3 dev.py
ui` shows their delivery assets too), `research` (every field of the daily bars, US and HK, split-adjusted, Parquet)
and `risk` (close and volume in USD for every demo region, the last week, CSV). Their API keys are written to
`$TICKLAKE_HOME/secrets/<tenant>.key` (mode 0600) and the file names those files, never the keys. After the night
it materializes every delivery, then prints the files, the manifests and one `curl` per tenant against
`ticklake serve`.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ticklake import settings

JOB = "tenant_deliveries"
RESEARCH_REGIONS = ("US", "HK")
PORT = 8765


def tenants_text(home: Path, regions: tuple[str, ...]) -> str:
    research = [r for r in RESEARCH_REGIONS if r in regions] or list(regions[:1])
    return (
        "# Written by the demo (python3 dev.py demo): two tenants of the demo's lake (docs/data-products.md).\n"
        "[tenants.research]\n"
        'description = "Quant research: every field of the daily bars, split-adjusted"\n'
        f"regions = {json.dumps(research)}\n"
        'prices = "adjusted"\nformat = "parquet"\n'
        f'target = "{home / "deliveries" / "research"}"\n'
        "[tenants.research.datasets]\n"
        'klines_daily = "all"\n'
        "[tenants.research.api]\n"
        f'key_file = "{home / "secrets" / "research.key"}"\n'
        "requests_per_second = 50\n\n"
        "[tenants.risk]\n"
        'description = "Market risk: closes and volumes in USD, the last week"\n'
        f"regions = {json.dumps(list(regions))}\n"
        'currency = "USD"\nformat = "csv"\n'
        "window = { last_days = 7 }\n"
        f'target = "{home / "deliveries" / "risk"}"\n'
        "[tenants.risk.datasets]\n"
        'klines_daily = ["region", "symbol", "trade_date", "close", "volume"]\n'
        "[tenants.risk.api]\n"
        f'key_file = "{home / "secrets" / "risk.key"}"\n'
        "requests_per_second = 10\n"
    )


def declare(paths: settings.Paths) -> Path | None:
    """Write the demo's tenants file and keys unless a tenants file is in use already; the file, or None."""
    if settings.tenants_file() is not None:
        return None
    keys = paths.home / "secrets"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    for tenant in ("research", "risk"):
        key = keys / f"{tenant}.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"tk_{tenant}_{secrets.token_urlsafe(24)}\n")
    path = paths.home / "tenants.toml"
    path.write_text(tenants_text(paths.home, settings.regions()))
    return path


@dataclass
class Delivered:
    manifests: list[Path]


def deliver(defs: dg.Definitions, instance: dg.DagsterInstance, show_in_ui) -> Delivered:
    """Every tenant product for every region it is granted: the `tenant_deliveries` job, one run per region."""
    from ticklake.products.tenants import Tenants

    tenants = Tenants.from_env()
    job = defs.resolve_job_def(JOB)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    regions = sorted({r for t in tenants for r in t.regions} & set(settings.regions()))  # the job's partitions
    for region in regions:
        result = job.execute_in_process(instance=instance, partition_key=region, run_config=quiet)
        show_in_ui(instance, result.run_id)
    manifests = sorted(m for t in tenants if not t.target.startswith("s3://")
                       for m in Path(t.target).glob("*/region=*/manifest.json"))
    return Delivered(manifests)


def describe(delivered: Delivered, ticklake_command: str, home_prefix: str, short) -> list[str]:
    from ticklake.products.tenants import Tenants

    lines = [f"Tenant data products (docs/data-products.md): {len(delivered.manifests)} deliveries, each a folder "
             "of files and the manifest.json that lists them"]
    for manifest_path in delivered.manifests:
        manifest = json.loads(manifest_path.read_text())
        files = manifest.get("files", [])
        rows = sum(f.get("rows", 0) for f in files)
        lines.append(f"  {short(manifest_path.parent)}/: {len(files)} files, {rows:,} rows, snapshot "
                     f"{manifest.get('snapshot', {}).get('id', '?')}, columns "
                     f"{', '.join(c['name'] for c in manifest.get('schema', []))}")
        for f in files[:2]:
            lines.append(f"    {f['path']}  {f['rows']:,} rows  sha256 {f['sha256'][:16]}...")
    import ticklake

    tenants = Tenants.from_env()
    lines += ["", "The read API, within each tenant's grant (start it, then ask; docs/data-products.md):",
              f"  {home_prefix}{ticklake_command} serve --port {PORT} &"]
    with ticklake.connect(settings.home()) as con:
        for tenant in tenants:
            if tenant.api is None:
                continue
            region = tenant.regions[0]
            product = next(iter(tenant.products.values()))
            symbol = next(iter(con.execute("SELECT symbol FROM klines_daily WHERE region = ? GROUP BY 1 "
                                           "ORDER BY count(*) DESC, 1 LIMIT 1", [region]).fetchall()), ("AAPL",))[0]
            fields = ",".join([f for f in ("trade_date", "close", "volume") if f in product.fields])
            lines.append(f"  curl -s -H \"Authorization: Bearer $(cat {short(tenant_key_file(tenant.name))})\" "
                         f"'http://127.0.0.1:{PORT}/v1/{product.name}?regions={region}&symbols={symbol}"
                         f"&fields={fields}&format={'csv' if tenant.format == 'csv' else 'json'}'   # {tenant.name}")
    return lines


def tenant_key_file(name: str) -> Path:
    return settings.home() / "secrets" / f"{name}.key"
