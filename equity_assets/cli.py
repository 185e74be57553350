"""`equity …`: the project's command line.

Subcommands import their domain lazily so `equity db url` stays fast and works before the
rest of the package is importable.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _cluster():
    from .db.cluster import EmbeddedCluster

    return EmbeddedCluster()


def _external_db() -> bool:
    return bool(os.environ.get("EQUITY_DATABASE_URL"))


def cmd_db_start(args: argparse.Namespace) -> int:
    if _external_db():
        from .db.migrate import migrate
        from .db.settings import admin_database_url, database_url

        applied = migrate(admin_database_url())
        print(f"EQUITY_DATABASE_URL is set; applied {len(applied)} migration(s)", file=sys.stderr)
        print(database_url())
        return 0
    dsn = _cluster().start()
    from .devenv import ensure_dev_settings

    ensure_dev_settings()  # dev-only secrets and the campaign's first day, kept from now on
    if not os.environ.get("EQUITY_HOME"):  # the project's own cluster, not a private one
        from .db.settings import dagster_storage_url

        write_dotenv(PROJECT_ROOT / ".env", "DAGSTER_PG_URL", dagster_storage_url())
    print(dsn)
    return 0


def write_dotenv(path: Path, key: str, value: str) -> None:
    """Set `key` in a .env file, keeping its other lines. Dagster's CLI reads `.env` from the working
    directory, so `dagster definitions validate` / `dagster dev` run from the checkout find the
    storage that `dagster.yaml` names (the URL carries no password: it points at the pgpass file)."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if not line.startswith(f"{key}=")]
    path.write_text("\n".join([*kept, f"{key}={value}"]) + "\n")


def cmd_db_url(args: argparse.Namespace) -> int:
    from .db.settings import admin_database_url, dagster_storage_url, database_url

    if args.dagster:
        print(dagster_storage_url())
    else:
        print(admin_database_url() if args.admin else database_url())
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from .db.migrate import migration_status
    from .db.settings import admin_database_url

    status: dict[str, object] = {"external": _external_db()}
    if not _external_db():
        cluster = _cluster()
        state = cluster.load_state()
        status.update(
            initialized=state is not None,
            running=cluster.is_running(),
            data_dir=str(state.data_dir) if state else None,
            port=state.port if state else None,
            run_as=state.run_as if state else None,
        )
        if not status["running"]:
            print(json.dumps(status, indent=2))
            return 1
    status["migrations"] = migration_status(admin_database_url())
    print(json.dumps(status, indent=2))
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from .db.cluster import migrate_and_grant
    from .db.migrate import migrate
    from .db.settings import admin_database_url

    applied = migrate_and_grant(admin_database_url(), args.grant_to) if args.grant_to else migrate(admin_database_url())
    print(json.dumps({"applied": applied}))
    return 0


def cmd_db_stop(args: argparse.Namespace) -> int:
    stopped = _cluster().stop()
    print("stopped" if stopped else "not running")
    return 0


def dagster_env() -> dict[str, str]:
    """Environment for Dagster processes: instance home and its PostgreSQL storage."""
    from .db.cluster import equity_home
    from .db.settings import dagster_storage_url

    env = dict(os.environ)
    home = Path(env.get("DAGSTER_HOME") or equity_home() / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    # The instance file lives outside the folder commands run in: Dagster warns about a dagster.yaml
    # in the working directory that DAGSTER_HOME does not point at.
    link, target = home / "dagster.yaml", PROJECT_ROOT / "deploy" / "dev" / "dagster.yaml"
    if link.is_symlink() and link.resolve() != target.resolve():  # a link to where the file used to be
        link.unlink()
    if not link.exists():
        link.symlink_to(target)
    env["DAGSTER_HOME"] = str(home)
    env.setdefault("DAGSTER_PG_URL", dagster_storage_url())
    return env


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout_s: float = 30.0) -> None:
    """Until `process` listens on 127.0.0.1:`port`; fails fast when it exits (e.g. port taken)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with {process.returncode} (is port {port} in use? pick another)")
        if _listening(port):
            return
        time.sleep(0.2)
    raise SystemExit(f"{name} did not listen on port {port} within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
    """Signal one child by its PID and reap it (killed if it does not stop in time)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cmd_dev(args: argparse.Namespace) -> int:
    """Everything local work needs: the database, local settings, the sandbox, the gateway and
    `dagster dev` (UI + daemon, so schedules, sensors and backfills run). Ctrl+C (or SIGINT /
    SIGTERM to this process) stops them all."""
    from .devenv import load_dev_settings

    if not _external_db():
        _cluster().start()
    load_dev_settings()
    env = dagster_env()
    env.setdefault("EQUITY_SANDBOX_URL", f"http://127.0.0.1:{args.sandbox_port}")
    env.setdefault("EQUITY_CONSENT_BASE_URL", f"http://127.0.0.1:{args.gateway_port}")
    # A background shell leaves SIGINT ignored, and an ignored signal stays ignored across exec:
    # Dagster would then ignore SIGTERM too. Children get default handlers; ours forwards.
    stopping: list[int] = []
    signal.signal(signal.SIGINT, lambda sig, _frame: stopping.append(sig))
    signal.signal(signal.SIGTERM, lambda sig, _frame: stopping.append(sig))
    bin_dir = Path(sys.executable).parent
    services: list[subprocess.Popen] = []
    dagster: subprocess.Popen | None = None
    try:
        for name, port in (("sandbox", args.sandbox_port), ("gateway", args.gateway_port)):
            if _listening(port):  # another checkout's make dev, say: ours must not talk to it
                raise SystemExit(f"port {port} is in use; pick another with --{name}-port")
            services.append(subprocess.Popen([str(bin_dir / "equity"), name, "--port", str(port)], env=env,
                                             preexec_fn=_default_signals))
            wait_for_port(port, services[-1], name)
        print(f"sandbox {env['EQUITY_SANDBOX_URL']}, gateway {env['EQUITY_CONSENT_BASE_URL']}", file=sys.stderr)
        dagster = subprocess.Popen(
            [str(bin_dir / "dagster"), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"),
             "-h", args.host, "-p", str(args.port)],
            env=env, cwd=PROJECT_ROOT, preexec_fn=_default_signals,
        )
        while dagster.poll() is None and not stopping and all(s.poll() is None for s in services):
            time.sleep(0.5)
    finally:
        if dagster is not None:
            stop_process(dagster, signal.SIGINT, timeout_s=60)
        for service in reversed(services):
            stop_process(service)
    return 0 if stopping or (dagster is not None and dagster.returncode == 0) else 1


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    from .devenv import load_dev_settings

    if not _external_db():
        _cluster().start()
    load_dev_settings()
    os.environ.update(dagster_env())
    return run_demo()


def cmd_gateway(args: argparse.Namespace) -> int:
    from .gateway import serve
    from .gateway.server import default_workers

    serve(host=args.host, port=args.port, workers=args.workers or default_workers())
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from .gateway import UploadError, upload_file

    try:
        answer = upload_file(args.file, url=args.url, source=args.source)
    except UploadError as exc:
        print(json.dumps(exc.body if isinstance(exc.body, dict) else {"error": exc.error, "detail": exc.detail}))
        return 1
    print(json.dumps(answer))
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import serve

    serve(host=args.host, port=args.port)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f".bench.{args.bench}", __package__)
    options = {k: v for k, v in vars(args).items() if k in module.OPTIONS and v is not None}
    figures = module.run(**options)
    print(json.dumps(figures, indent=None if args.json else 2))
    return 0


def cmd_replies_classify(args: argparse.Namespace) -> int:
    """JSON lines {"text", "subject"} on stdin → one JSON line {"intent", "revocation", "confidence"} each."""
    from .engage.classifier import classify

    status = 0
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("text", ""), str):
                raise ValueError("expected an object with a string \"text\"")
        except ValueError as exc:
            print(json.dumps({"error": f"line {number}: {exc}"}), flush=True)
            status = 1
            continue
        subject = item.get("subject")
        print(json.dumps(classify(item.get("text") or "", subject if isinstance(subject, str) else None).as_dict()),
              flush=True)
    return status


def cmd_brokers(args: argparse.Namespace) -> int:
    """Broker accounts: add, set a password (from stdin), list, rotate the signing secret, or mint an API token."""
    import getpass

    from .gateway.portal import accounts, identity
    from .security.notify import issue_signing_secret

    postgres = _postgres()
    try:
        with postgres.connection() as conn:
            if args.brokers_command == "add":
                broker = accounts.add_broker(conn, args.name, args.email, args.states.split(","), args.daily_cap)
                # the broker's own webhook signing secret, shown this once
                print(json.dumps({"id": str(broker), "email": args.email.lower(),
                                  "signing_secret": issue_signing_secret(conn, broker)}))
            elif args.brokers_command == "set-password":
                password = (getpass.getpass("New password: ") if sys.stdin.isatty()
                            else sys.stdin.readline().rstrip("\r\n"))
                print(json.dumps({"id": str(accounts.set_password(conn, args.email, password))}))
            elif args.brokers_command == "list":
                print(json.dumps(accounts.list_brokers(conn), indent=2))
            else:
                row = conn.execute("SELECT id FROM brokers WHERE lower(email) = lower(%s) AND active",
                                   (args.email,)).fetchone()
                if row is None:
                    raise LookupError("no active broker has this e-mail")
                if args.brokers_command == "rotate-secret":
                    print(json.dumps({"id": str(row[0]), "signing_secret": issue_signing_secret(conn, row[0])}))
                    return 0
                from datetime import timedelta

                print(identity.issue_token(row[0], timedelta(minutes=args.minutes)))
    finally:
        postgres.close()
    return 0


def cmd_voice_window(args: argparse.Namespace) -> int:
    """The calling-window part of the compliance gate for one person at one moment (no database)."""
    from datetime import datetime

    from .voice.gate import check_window

    at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
    result = check_window(at, property_zip=args.zip, property_state=args.state, mailing_zip=args.mailing_zip,
                          phone=args.phone)
    print(json.dumps(result.as_dict(), indent=None if args.json else 2))
    return 0


def _postgres():
    from .db.resources import PostgresResource

    return PostgresResource(application_name="equity_cli")


def _print(value, as_json: bool) -> None:
    print(json.dumps(value, default=str, indent=None if as_json else 2))


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest.operate import ingest_file

    summary = ingest_file(_postgres(), args.file, source=args.source)
    _print(summary, args.json)
    return 0 if summary["success"] else 1


def cmd_trace_upload(args: argparse.Namespace) -> int:
    from .ingest.operate import trace_upload

    with _postgres().connection() as conn:
        rows = trace_upload(conn, args.upload_id, args.row)
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
    else:
        _print(rows, False)
    return 0 if rows else 1


def cmd_leads_candidates(args: argparse.Namespace) -> int:
    from .ingest.candidates import list_candidates

    with _postgres().connection() as conn:
        rows = list_candidates(conn, None if args.status == "all" else args.status, args.limit)
    _print(rows, args.json)
    return 0


def cmd_leads_merge(args: argparse.Namespace) -> int:
    from .ingest.candidates import merge_leads

    by = args.by or os.environ.get("USER") or ""
    with _postgres().connection() as conn:
        outcome = merge_leads(conn, args.keep, args.other, by)
    _print(outcome, args.json)
    return 0 if outcome["merged"] else 1


def parse_age(text: str):
    """``90s``, ``30m``, ``2h`` or ``7d`` as a timedelta."""
    from datetime import timedelta

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"age {text!r}: a number then s, m, h or d (e.g. 2h, 7d)")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def cmd_dlq(args: argparse.Namespace) -> int:
    """The dead-letter queue: list and show letters, retry or drop them by id."""
    from .observe import dlq

    postgres = _postgres()
    try:
        with postgres.connection() as conn:
            if args.dlq_command == "list":
                result: object = dlq.list_letters(conn, stage=args.stage, upload=args.upload, status=args.status,
                                                  older_than=args.older_than, newer_than=args.newer_than,
                                                  limit=args.limit)
            elif args.dlq_command == "show":
                result = dlq.show_letter(conn, args.id)
                if result is None:
                    raise LookupError(f"no dead letter {args.id}")
            elif args.dlq_command == "retry":
                result = {"retried": dlq.retry_letters(conn, args.ids)}
            else:
                result = {"dropped": dlq.drop_letters(conn, args.ids)}
    finally:
        postgres.close()
    if args.json or args.dlq_command in ("retry", "drop"):
        print(json.dumps(result, indent=None if args.json else 2))
    elif args.dlq_command == "show":
        print(json.dumps(result, indent=2))
    else:
        for row in result:  # type: ignore[union-attr]
            print(f"{row['id']:>8}  {row['status']:<9} {row['stage']:<24} tries={row['attempts']}  "
                  f"{row['created_at'][:19]}  {row['source_ref'] or '-'}  {row['reason'][:80]}")
    return 0


def cmd_campaign_preview(args: argparse.Namespace) -> int:
    """Who `--date`'s batch would send to and why each other contactable lead would not; writes nothing."""
    from datetime import date

    from .campaign.preview import preview_day

    # the campaign the code location would fall back on (the sandbox's outside production)
    local = os.environ.get("EQUITY_ENV", "local") != "production"
    default_campaign = os.environ.get("INSTANTLY_CAMPAIGN_ID") or ("sandbox-campaign" if local else None)
    postgres = _postgres()
    try:
        with postgres.connection() as conn:
            result = preview_day(conn, date.fromisoformat(args.date), default_campaign=default_campaign,
                                 broker=args.broker)
    finally:
        postgres.close()
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result["counts"], indent=2))
    return 0


def uuid_arg(text: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a lead id (a UUID)") from None


def cmd_evidence(args: argparse.Namespace) -> int:
    """One lead's compliance evidence (consent, e-mails, calls and their gate, suppressions) as JSON or HTML."""
    from .voice.evidence import lead_evidence, render_html

    postgres = _postgres()
    try:
        with postgres.connection() as conn:
            evidence = lead_evidence(conn, args.lead_id)
    finally:
        postgres.close()
    print(render_html(evidence) if args.format == "html" else json.dumps(evidence, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the database: embedded cluster or EQUITY_DATABASE_URL")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("start", help="initialize (first time), start, migrate; prints the DSN").set_defaults(func=cmd_db_start)
    url = dbsub.add_parser("url", help="print the pipeline's DSN")
    url.add_argument("--admin", action="store_true", help="the schema owner's DSN instead")
    url.add_argument("--dagster", action="store_true", help="Dagster's storage DSN instead")
    url.set_defaults(func=cmd_db_url)
    dbsub.add_parser("status", help="running? where? which migrations?").set_defaults(func=cmd_db_status)
    migrate = dbsub.add_parser("migrate", help="apply pending migrations")
    migrate.add_argument("--grant-to", metavar="ROLE",
                         help="then let this login role act as service_role and authenticated (a new server)")
    migrate.set_defaults(func=cmd_db_migrate)
    dbsub.add_parser("stop", help="stop the embedded cluster").set_defaults(func=cmd_db_stop)

    dev = sub.add_parser("dev", help="sandbox + gateway + dagster dev (UI and daemon) on the embedded database")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port")
    dev.add_argument("--sandbox-port", type=int, default=8090)
    dev.add_argument("--gateway-port", type=int, default=8080)
    dev.set_defaults(func=cmd_dev)

    sub.add_parser("demo", help="run the main job end to end on the embedded defaults").set_defaults(func=cmd_demo)

    gateway = sub.add_parser("gateway", help="HTTP gateway: signed uploads, webhooks, consent pages, broker portal and API")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8080)
    gateway.add_argument("--workers", type=int, default=None,
                         help="worker processes (default: $EQUITY_GATEWAY_WORKERS, else one per core, at most 4)")
    gateway.set_defaults(func=cmd_gateway)

    upload = sub.add_parser("upload", help="sign and upload a CSV to a gateway (first secret of EQUITY_UPLOAD_SECRETS)")
    upload.add_argument("file")
    upload.add_argument("--url", required=True, help="gateway base URL, e.g. http://127.0.0.1:8080")
    upload.add_argument("--source", default="propstream")
    upload.set_defaults(func=cmd_upload)

    sandbox = sub.add_parser("sandbox", help="local simulators of Melissa, BatchData, Instantly and VAPI")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8090)
    sandbox.set_defaults(func=cmd_sandbox)

    brokers = sub.add_parser("brokers", help="broker accounts for the portal and the API")
    brokers_sub = brokers.add_subparsers(dest="brokers_command", required=True)
    add = brokers_sub.add_parser("add", help="add a broker")
    add.add_argument("name")
    add.add_argument("--email", required=True)
    add.add_argument("--states", required=True, help="comma-separated, e.g. CA,NV")
    add.add_argument("--daily-cap", type=int, default=250)
    brokers_sub.add_parser("set-password", help="set a password read from stdin (argon2id)").add_argument("email")
    brokers_sub.add_parser("list", help="brokers and their login state")
    brokers_sub.add_parser("rotate-secret", help="print a new webhook signing secret (shown once); the previous "
                           "one keeps signing for 24 hours").add_argument("email")
    token = brokers_sub.add_parser("token", help="print an API bearer token (EQUITY_JWT_SECRET)")
    token.add_argument("email")
    token.add_argument("--minutes", type=int, default=60)
    brokers.set_defaults(func=cmd_brokers)

    replies = sub.add_parser("replies", help="the reply classifier")
    replies_sub = replies.add_subparsers(dest="replies_command", required=True)
    replies_sub.add_parser("classify", help="JSON lines {text, subject} on stdin -> {intent, revocation, confidence}"
                           ).set_defaults(func=cmd_replies_classify)

    voice = sub.add_parser("voice", help="AI voice calls: the compliance gate")
    voice_sub = voice.add_subparsers(dest="voice_command", required=True)
    window = voice_sub.add_parser("window", help="is a call allowed at --at in every candidate zone of the person?")
    window.add_argument("--zip", help="property ZIP code")
    window.add_argument("--state", help="property state (two letters)")
    window.add_argument("--mailing-zip", help="mailing ZIP code")
    window.add_argument("--phone", help="the number to dial, E.164")
    window.add_argument("--at", required=True, help="ISO 8601 moment with a UTC offset, e.g. 2026-07-01T14:00:00Z")
    window.add_argument("--json", action="store_true", help="one line of JSON")
    window.set_defaults(func=cmd_voice_window)

    ingest = sub.add_parser("ingest", help="ingest one CSV in-process (no gateway): stage, merge, print the counts")
    ingest.add_argument("file")
    ingest.add_argument("--source", default="propstream")
    ingest.add_argument("--json", action="store_true", help="one line of JSON")
    ingest.set_defaults(func=cmd_ingest)

    trace = sub.add_parser("trace", help="follow source rows to the leads they became")
    tracesub = trace.add_subparsers(dest="trace_command", required=True)
    trace_up = tracesub.add_parser("upload", help="one JSON object per row of an upload")
    trace_up.add_argument("upload_id")
    trace_up.add_argument("--row", type=int, help="only this data row (1-based)")
    trace_up.add_argument("--json", action="store_true", help="JSON lines")
    trace_up.set_defaults(func=cmd_trace_upload)

    leads = sub.add_parser("leads", help="review probable duplicates and merge leads by hand")
    leadsub = leads.add_subparsers(dest="leads_command", required=True)
    cands = leadsub.add_parser("candidates", help="probable duplicate pairs the exact keys did not merge")
    cands.add_argument("--status", default="open", choices=["open", "merged", "dismissed", "all"])
    cands.add_argument("--limit", type=int, default=200)
    cands.add_argument("--json", action="store_true", help="one line of JSON")
    cands.set_defaults(func=cmd_leads_candidates)
    merge = leadsub.add_parser("merge", help="fold lead OTHER into lead KEEP with the pipeline's merge rules")
    merge.add_argument("keep")
    merge.add_argument("other")
    merge.add_argument("--by", help="who decided (default: $USER); recorded with the merge")
    merge.add_argument("--json", action="store_true", help="one line of JSON")
    merge.set_defaults(func=cmd_leads_merge)

    campaign = sub.add_parser("campaign", help="the daily e-mail campaign")
    campaign_sub = campaign.add_subparsers(dest="campaign_command", required=True)
    preview = campaign_sub.add_parser("preview", help="dry run of a batch date: who would be sent, why not the others")
    preview.add_argument("--date", required=True, help="batch date, YYYY-MM-DD")
    preview.add_argument("--broker", help="one broker's id")
    preview.add_argument("--json", action="store_true", help="every lead as one line of JSON (default: counts)")
    preview.set_defaults(func=cmd_campaign_preview)

    evidence = sub.add_parser("evidence", help="a lead's compliance evidence: consent, e-mails, calls, suppressions")
    evidence.add_argument("lead_id", type=uuid_arg)
    evidence.add_argument("--format", choices=["json", "html"], default="json")
    evidence.set_defaults(func=cmd_evidence)

    dlq = sub.add_parser("dlq", help="the dead-letter queue: list, show, retry, drop")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_sub.add_parser("list", help="letters, newest first")
    dlq_list.add_argument("--stage")
    dlq_list.add_argument("--upload", help="an upload id (the letters' source)")
    dlq_list.add_argument("--status", choices=["pending", "redriven", "resolved", "discarded", "dead"])
    dlq_list.add_argument("--older-than", type=parse_age, help="e.g. 2h, 7d")
    dlq_list.add_argument("--newer-than", type=parse_age, help="e.g. 30m, 1d")
    dlq_list.add_argument("--limit", type=int, default=100)
    dlq_sub.add_parser("show", help="one letter with its payload").add_argument("id", type=int)
    dlq_sub.add_parser("retry", help="back to pending, due now, tries reset").add_argument("ids", type=int, nargs="+")
    dlq_sub.add_parser("drop", help="discard (kept for the record, never retried)").add_argument(
        "ids", type=int, nargs="+")
    for command in dlq_sub.choices.values():
        command.add_argument("--json", action="store_true", help="one line of JSON")
    dlq.set_defaults(func=cmd_dlq)

    bench = sub.add_parser("bench", help="benchmarks; print one JSON object of figures and ratios")
    bench.add_argument("bench", choices=["ingest", "verify", "campaign", "replies", "webhooks", "portal", "voice",
                                         "reliability"])
    bench.add_argument("--rows", type=int, help="ingest: rows in the synthetic export")
    bench.add_argument("--leads", type=int, help="verify/campaign/portal/voice/reliability: leads in the database")
    bench.add_argument("--brokers", type=int, help="campaign/verify/portal: brokers")
    bench.add_argument("--rate", type=int, help="webhooks: offered requests per second")
    bench.add_argument("--seconds", type=float, help="webhooks: how long to offer them")
    bench.add_argument("--workers", type=int, help="webhooks: gateway worker processes (default 2)")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # a clear one-line error for operators; tracebacks with EQUITY_DEBUG=1
        if os.environ.get("EQUITY_DEBUG"):
            raise
        print(f"equity: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
