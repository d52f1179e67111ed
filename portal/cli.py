"""Scriptable commands: no prompts when options are given; secrets go to stdout, notes to stderr."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app

from portal.execution import dispatch
from portal.extensions import db
from portal.models import Role
from portal.models.audit import Actor
from portal.scopes import ROLE_SCOPES
from portal.security import generate_password
from portal.services import DomainError, oauth_clients, privacy_requests, tokens, users

CLI_ACTOR = Actor.system("cli")


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _fail(message: str) -> None:
    db.session.rollback()
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def register_cli(app) -> None:
    @app.cli.command("create-user")
    @click.argument("email")
    # The role is checked by the service (not click.Choice) so a bad one exits 1 like every other refusal.
    @click.option("--role", required=True, help="admin, staff or reviewer.")
    @click.option("--password", help="Omit to generate one (printed once).")
    @click.option("--name", default="")
    @click.option(
        "--keep-password",
        is_flag=True,
        help="Do not ask the user to change the password at first sign-in (a password is someone else's "
        "choice otherwise, so by default it must be changed).",
    )
    def create_user(email: str, role: str, password: str | None, name: str, keep_password: bool) -> None:
        """Create a user. Prints the generated password when --password is omitted."""
        generated = password is None
        if generated:
            password = generate_password()
        try:
            user = users.create_user(
                email, role, password, CLI_ACTOR, name=name, must_change_password=not keep_password
            )
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        click.echo(f"Created {user.role} {user.email}.", err=True)
        if generated:
            click.echo(password)

    @app.cli.command("create-token")
    @click.argument("email")
    @click.option("--name", default="cli", help="A name to recognise the token by.")
    def create_token(email: str, name: str) -> None:
        """Create an API token for EMAIL and print it (only the token, on stdout). It is shown once."""
        user = users.find_by_email(email)
        if user is None or not user.active:
            _fail(f"No active user with email {email}.")
        try:
            _, secret = tokens.create_token(user, name, CLI_ACTOR)
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        click.echo(secret)

    @app.cli.command("create-client")
    @click.argument("email")
    @click.option(
        "--scopes",
        "scope_args",
        multiple=True,
        help="Scopes, comma- or space-separated (repeatable). Default: every scope of the user's role.",
    )
    def create_client(email: str, scope_args: tuple[str, ...]) -> None:
        """Create an OAuth client acting for EMAIL; prints {"client_id", "client_secret"} as JSON, once."""
        user = users.find_by_email(email)
        if user is None or not user.active:
            _fail(f"No active user with email {email}.")
        role_scopes = ROLE_SCOPES.get(user.role, frozenset())
        wanted = [s for arg in scope_args for s in arg.replace(",", " ").split()]
        try:
            client, secret = oauth_clients.create_client(
                user, wanted if scope_args else sorted(role_scopes), CLI_ACTOR, granted_by=role_scopes
            )
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        click.echo(
            f"Created client {client.id} acting for {user.email}: {', '.join(client.scopes)}", err=True
        )
        click.echo(json.dumps({"client_id": client.id, "client_secret": secret}))

    @app.cli.command("create-request")
    @click.option("--email", help="The data subject's email address.")
    @click.option("--phone", "phone_number", help="The data subject's phone number.")
    @click.option("--policy", "policy_key", default="default_access_policy", show_default=True)
    @click.option("--external-id", help="Your own reference (ticket number, ...).")
    def create_request(email, phone_number, policy_key, external_id) -> None:
        """Create a privacy request; prints its id on stdout and its status on stderr."""
        try:
            pr = privacy_requests.create_request(
                identity={"email": email, "phone_number": phone_number},
                policy_key=policy_key,
                external_id=external_id,
                actor=CLI_ACTOR,
            )
        except DomainError as exc:
            _fail(str(exc))
        request_id = pr.id
        dispatch.commit_and_run()
        db.session.expire_all()
        click.echo(request_id)
        click.echo(f"Status: {privacy_requests.get_request(request_id).status}", err=True)

    @app.cli.command("export-package")
    @click.argument("request_id")
    @click.option("--storage", "storage_key", required=True, help="The key of the storage destination.")
    def export_package(request_id: str, storage_key: str) -> None:
        """Write a completed request's package to a storage destination; prints where (audited)."""
        from portal.crypto import DecryptionError
        from portal.services import storage, storage_export

        try:
            privacy_request = privacy_requests.get_request(request_id)
            config = storage.get_storage_config(storage_key)
            written = storage_export.export_package(
                privacy_request, config, CLI_ACTOR, before_write=db.session.commit
            )
        except storage_export.StorageWriteFailed as exc:
            db.session.commit()  # the failed attempt stays in the audit trail
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except DomainError as exc:
            _fail(str(exc))
        except DecryptionError:
            _fail(f"The package of {request_id} cannot be decrypted with the configured encryption keys.")
        db.session.commit()
        click.echo(written.location)
        click.echo(f"Wrote {written.size} bytes (SHA-256 {written.sha256}).", err=True)

    @app.cli.command("sweep")
    def sweep() -> None:
        """Requeue lost runs (killed worker, broker down); for cron when Celery beat is not used."""
        from portal.execution.sweeper import sweep as run_sweep
        from portal.services.delivery import store_pending_copies
        from portal.services.retention import purge_if_enabled

        requeued = run_sweep()
        for item in requeued:
            note = "" if item.enqueued else " (broker unreachable: will retry)"
            click.echo(f"{item.request_id} {item.reason}{note}")
        click.echo(f"Requeued {_count(len(requeued), 'request')}.", err=True)
        stored = store_pending_copies()
        if stored:
            click.echo(
                f"Wrote {_count(stored, 'released package')} to the release storage destination.", err=True
            )
        if current_app.config["PURGE_ON_SWEEP"]:
            purged = purge_if_enabled()
            click.echo(f"Purged {_count(len(purged), 'request')} under the retention policy.", err=True)

    @app.cli.command("send-notifications")
    def send_notifications() -> None:
        """Build the daily digest when due and send the mails waiting (cron, when Celery beat is not used)."""
        from portal.notifications import delivery

        report = delivery.run()
        note = f"; the next retry is due in {report.retry_in:.0f} s" if report.retry_in else ""
        click.echo(
            f"Digests logged: {report.built}, reminders: {report.reminded}. Sent {report.sent}, "
            f"failed {report.failed}, skipped {report.skipped}{note}.",
            err=True,
        )

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create demo users, two manual webhooks and requests in several states (idempotent)."""
        from portal.demo import seed_demo as run_seed

        try:
            lines = run_seed()
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        for line in lines:
            click.echo(line)

    @app.cli.command("ensure-admin")
    @click.option("--email", default="admin@example.com", show_default=True)
    def ensure_admin(email: str) -> None:
        """When no active admin exists, create one and print how to sign in (the password, once)."""
        if users.active_admin_exists():
            return
        if users.find_by_email(email) is not None:
            _fail(
                f"No active admin exists, and {email} is already a user. Make an admin with "
                "`flask --app app create-user EMAIL --role admin`, or pass another --email."
            )
        password = generate_password()
        try:
            users.create_user(email, Role.ADMIN, password, CLI_ACTOR, must_change_password=True)
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        click.echo(
            "\n  First admin created — sign in at http://127.0.0.1:5000\n"
            f"    email:    {email}\n    password: {password}\n"
            "  This password is shown only once; you will be asked to change it.\n"
        )

    @app.cli.command("purge")
    @click.option("--dry-run", is_flag=True, help="List what would be purged; change nothing.")
    def purge(dry_run: bool) -> None:
        """Delete identities, manual inputs and packages of requests closed over RETENTION_DAYS ago."""
        from portal.services import retention

        try:
            items = retention.due_for_purge() if dry_run else retention.purge_expired(CLI_ACTOR)
        except DomainError as exc:
            _fail(str(exc))
        db.session.commit()
        for item in items:
            click.echo(f"{item.request_id} {item.status} closed {item.closed_at:%Y-%m-%d}")
        verb = "Would purge" if dry_run else "Purged"
        days = retention.retention_days()
        click.echo(f"{verb} {_count(len(items), 'request')} closed more than {days} days ago.", err=True)

    @app.cli.command("rotate-encryption-key")
    @click.option("--new-key", help="The new key. Without it, the first key of PORTAL_ENCRYPTION_KEY is new.")
    @click.option("--batch-size", default=500, show_default=True, type=click.IntRange(min=1))
    def rotate_encryption_key(new_key: str | None, batch_size: int) -> None:
        """Re-encrypt every encrypted value under the new key, one committed batch at a time."""
        from portal.crypto import EncryptionKeyError, keyring
        from portal.services import key_rotation

        try:
            ring = keyring().rotated(new_key) if new_key else keyring()
        except EncryptionKeyError as exc:
            _fail(str(exc).replace("PORTAL_ENCRYPTION_KEY", "--new-key"))
        report = key_rotation.rotate(ring, after_batch=db.session.commit, batch_size=batch_size)
        db.session.commit()
        click.echo(
            f"Re-encrypted {report.reencrypted} value(s); {report.already_current} already used the new "
            f"key; rebuilt {report.indexes_rebuilt} search index(es).",
            err=True,
        )
        if new_key:
            click.echo(key_rotation.after_new_key(app, ring), err=True)
        if report.changed_meanwhile:
            click.echo(
                f"{report.changed_meanwhile} value(s) were saved meanwhile by a process that may still "
                "use the old key: run this command again once every process has the new key first.",
                err=True,
            )
        if report.undecryptable:
            click.echo(
                f"{len(report.undecryptable)} value(s) cannot be decrypted with any configured key and were "
                f"left as they are: {', '.join(report.undecryptable)}. Keep the old key until they are "
                "dealt with.",
                err=True,
            )
        if not report.complete:
            sys.exit(1)
