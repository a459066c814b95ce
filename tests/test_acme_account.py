"""The ACME account against a real pebble: registered once, and its contact updated when the
resolver's `email` changes (RFC 8555 §7.3.2), not left at the first address."""

from __future__ import annotations

from pathlib import Path

from acme import messages

from a3s_gateway.runtime.acme.client import open_account

from .pebble_server import Pebble


def test_a_changed_email_updates_the_stored_account(tmp_path: Path) -> None:
    with Pebble.start(tmp_path / "pebble") as pebble:
        first = open_account(pebble.directory, pebble.ca_file, None, "first@example.com")
        again = open_account(pebble.directory, pebble.ca_file, first.record, "first@example.com")
        assert again.record == first.record  # nothing to store anew
        moved = open_account(pebble.directory, pebble.ca_file, first.record, "second@example.com")
        assert moved.record["uri"] == first.record["uri"] and moved.record["email"] == "second@example.com"
        # What the server holds now (onlyReturnExisting, RFC 8555 §7.3.1).
        account = moved.acme.query_registration(
            messages.RegistrationResource(uri=moved.record["uri"], body=messages.Registration())
        )
        assert account.body.emails == ("second@example.com",)
