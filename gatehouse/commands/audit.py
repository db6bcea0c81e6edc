"""`gatehouse audit verify|export`: check the chain, or ship it off the host."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from gatehouse.audit.chain import Checkpoint, Entry, Root, StreamReport
from gatehouse.commands._options import URL_ENV, key_option
from gatehouse.crypto import VerifyKey


def _report(reports: list[StreamReport]) -> None:
    if not reports:
        click.echo("no audit entries")
    for r in reports:
        if r.ok:
            what = "records" if r.stream.startswith("(") else "entries"
            tail = f", {r.unsigned} unsigned at the tail" if r.unsigned else ""
            click.echo(
                f"ok   {r.stream}: {r.entries} {what}, {r.checkpoints} checkpoints, "
                f"head {r.head_hash[:16]}{tail}"
            )
        else:
            click.echo(f"BAD  {r.stream}: first bad entry {r.first_bad_seq}: {r.reason}")
            for more in r.problems[1:5]:
                click.echo(f"     {more}")
    if not all(r.ok for r in reports):
        sys.exit(1)


def _keys_dir(data_dir: Path, keys_dir: Path | None) -> Path:
    return keys_dir if keys_dir is not None else data_dir / "keys"


def _every_stream(client: Any) -> tuple[str | None, ...]:
    """The streams the caller may read (`GET /api/v1/audit/streams`): every stream for a global
    admin (its acting tenant's stream alone may hold nothing), its tenant's for anybody else."""
    return tuple(client.request("GET", "/api/v1/audit/streams")["streams"])


def _server_keys(
    data_dir: Path, keys_dir: Path | None = None, trust_key: Path | None = None
) -> dict[str, VerifyKey]:
    pub = trust_key or _keys_dir(data_dir, keys_dir) / "server.pub"
    if not pub.exists():
        raise click.ClickException(f"no server key at `{pub}` (give --keys-dir or --trust-key)")
    key = VerifyKey.load(pub)
    return {key.key_id: key}


async def _open_store(data_dir: Path, keys_dir: Path | None = None) -> Any:
    from gatehouse.crypto import SigningKey
    from gatehouse.store.sqlite import SQLiteStore

    db = data_dir / "gatehouse.db"
    if not db.exists():
        raise click.ClickException(f"no database at `{db}`")
    # With the server's key an export can sign the heads it ships (`seal_audit`); `audit=False`:
    # these commands append no entries of their own.
    key_file = _keys_dir(data_dir, keys_dir) / "server.key"
    key = SigningKey.load(key_file) if key_file.exists() else None
    store = SQLiteStore(path=db, audit=False, audit_key=key)
    await store.open()
    return store


async def verify_data_dir(
    data_dir: Path,
    keys: dict[str, VerifyKey],
    *,
    witness: str | None = None,
    rows: bool = True,
) -> list[StreamReport]:
    """Everything `audit verify --data-dir` checks: streams, roots, the job and decision rows
    (`audit.binding`), and the witness when given. Opens the store read-only in effect: it
    neither appends nor signs."""
    from gatehouse.audit.binding import verify_rows
    from gatehouse.audit.verify import verify_store
    from gatehouse.audit.witness import read_witness
    from gatehouse.store.sqlite import SQLiteStore

    db = data_dir / "gatehouse.db"
    if not db.exists():
        raise click.ClickException(f"no database at `{db}`")
    store = SQLiteStore(path=db, audit=False)
    await store.open()
    try:
        records = list(read_witness(witness)) if witness is not None else None
        reports = await verify_store(store, keys, witness=records)
        if rows:
            entries = [e for name in await store.audit_streams() for e in await store.audit_entries(name)]
            jobs, decisions = [], []
            cursor = None
            while True:
                page = await store.list_jobs(None, limit=1000, cursor=cursor)
                jobs += page.jobs
                if (cursor := page.next_cursor) is None:
                    break
            while True:
                dpage = await store.list_decisions(None, limit=1000, cursor=cursor)
                decisions += dpage.decisions
                if (cursor := dpage.next_cursor) is None:
                    break
            reports.append(verify_rows(entries, jobs, decisions))
        return reports
    finally:
        await store.close()


@click.group()
def audit() -> None:
    """Verify and export the tamper-evident audit log."""


@audit.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="verify a server's data directory",
)
@click.option("--url", envvar=URL_ENV, help=f"verify through a running server (with --key; else ${URL_ENV})")
@key_option(required=False, param="api_key", help="API key of an admin or reviewer")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="verify an export made by `gatehouse audit export`",
)
@click.option(
    "--trust-key",
    "trust_key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="pin the checkpoint key (server.pub) instead of the export's header or the keys dir",
)
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the server's --keys-dir (default <data-dir>/keys)",
)
@click.option(
    "--witness",
    default=None,
    help="the server's --audit-witness FILE (or a URL answering GET with its lines): "
    "anything it saw must still be there",
)
def verify(
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    file: Path | None,
    trust_key: Path | None,
    keys_dir: Path | None,
    witness: str | None,
) -> None:
    """Walk every chain and checkpoint; exit 1 naming the first bad entry."""
    url = _explicit_url(url, data_dir, file)
    if sum(x is not None for x in (data_dir, url, file)) != 1:
        raise click.UsageError("give exactly one of --data-dir, --url or --file")
    if file is not None:
        from gatehouse.audit.verify import verify_file

        pinned = None
        if trust_key is not None:
            k = VerifyKey.load(trust_key)
            pinned = {k.key_id: k}
        try:
            _report(verify_file(file, pinned))
        except ValueError as exc:
            click.echo(f"BAD  {file}: {exc}")
            sys.exit(1)
        return
    if data_dir is not None:
        keys = _server_keys(data_dir, keys_dir, trust_key)
        try:
            reports = asyncio.run(verify_data_dir(data_dir, keys, witness=witness))
        except (OSError, ValueError) as exc:
            click.echo(f"BAD  witness: {exc}")
            sys.exit(1)
        _report(reports)
        return
    from gatehouse.client import ApiError, Client

    if not api_key:
        raise click.UsageError("--url needs --key")
    with Client(url or "", api_key=api_key) as client:
        try:
            body = client.request("GET", "/api/v1/audit/verify")
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
    reports = []
    for s in body["streams"]:
        r = StreamReport(
            stream=s["stream"],
            entries=s["entries"],
            checkpoints=s["checkpoints"],
            ok=s["ok"],
            first_bad_seq=s["first_bad_seq"],
            reason=s["reason"],
            head_hash=s["head_hash"],
        )
        reports.append(r)
    _report(reports)


@audit.command()
@click.option("--to", "to", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--since", default=None, help="sequence number or RFC 3339 time")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--url", envvar=URL_ENV, help=f"export through a running server (with --key; else ${URL_ENV})")
@key_option(required=False, param="api_key", help="API key of an admin or reviewer")
@click.option("--stream", "streams", multiple=True, help="streams to export (default: all / your tenant's)")
@click.option(
    "--keys-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the server's --keys-dir (default <data-dir>/keys)",
)
def export(
    to: Path,
    since: str | None,
    data_dir: Path | None,
    url: str | None,
    api_key: str | None,
    streams: tuple[str, ...],
    keys_dir: Path | None,
) -> None:
    """Write entries and checkpoints as JSON Lines, verifiable offline with `verify --file`."""
    from gatehouse.audit.verify import export_lines

    url = _explicit_url(url, data_dir, None)
    if (data_dir is None) == (url is None):
        raise click.UsageError("give exactly one of --data-dir or --url")
    from gatehouse.audit.events import parse_since
    from gatehouse.errors import BadRequest

    try:
        since_seq, since_ts = parse_since(since)
    except BadRequest as exc:
        raise click.BadParameter(exc.message) from None
    entries: list[Entry] = []
    checkpoints: list[Checkpoint] = []
    roots: list[Root] = []
    keys: list[VerifyKey] = []
    if data_dir is not None:

        async def run() -> None:
            store = await _open_store(data_dir, keys_dir)
            try:
                await store.seal_audit()  # so the file carries a signature over its last entries
                if not streams and since is None:  # a whole export: the roots vouch for it
                    roots.extend(await store.audit_roots())
                for name in streams or await store.audit_streams():
                    got = await store.audit_entries(name, since_seq=since_seq, since_ts=since_ts)
                    entries.extend(got)
                    if got:  # a stream with nothing new exports nothing, checkpoints included
                        first = got[0].seq
                        checkpoints.extend(c for c in await store.audit_checkpoints(name) if c.seq >= first)
            finally:
                await store.close()

        asyncio.run(run())
        keys = list(_server_keys(data_dir, keys_dir).values())
    else:
        from gatehouse.client import ApiError, Client

        if not api_key:
            raise click.UsageError("--url needs --key")
        with Client(url or "", api_key=api_key) as client:
            wanted: tuple[str | None, ...] = streams or (None,)
            if not streams:
                try:
                    wanted = _every_stream(client) or wanted
                except ApiError as exc:
                    click.echo(f"error: {exc}", err=True)
                    sys.exit(2)
            for name in wanted:
                cursor: str | None = since
                try:
                    while True:
                        page = client.request("GET", "/api/v1/audit", since=cursor, stream=name, limit=5000)
                        entries += [Entry.from_dict(e) for e in page["entries"]]
                        if page["next_since"] is None:
                            break
                        cursor = page["next_since"]
                except ApiError as exc:
                    click.echo(f"error: {exc}", err=True)
                    sys.exit(2)
                first = next((e.seq for e in entries if e.stream == page["stream"]), None)
                if first is not None:
                    checkpoints += [Checkpoint(**c) for c in page["checkpoints"] if c["seq"] >= first]
                keys = [VerifyKey.from_pem(page["key"]["pem"].encode())]
    lines = export_lines(entries, checkpoints, keys, exported_at=time.time(), since=since, roots=roots)
    to.write_text("\n".join(lines) + "\n", encoding="utf-8")
    click.echo(f"exported {len(entries)} entries and {len(checkpoints)} checkpoints to {to}")


def _explicit_url(url: str | None, data_dir: Path | None, file: Path | None) -> str | None:
    """`--url` unless it only came from $GATEHOUSE_URL while --data-dir or --file was given."""
    ctx = click.get_current_context()
    from_env = ctx.get_parameter_source("url") == click.core.ParameterSource.ENVIRONMENT
    return None if from_env and (data_dir is not None or file is not None) else url
