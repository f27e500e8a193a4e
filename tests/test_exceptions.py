"""``mask_secrets``: the one rule that keeps passwords and tokens out of messages."""

from __future__ import annotations

import pytest

from asynctelemetry._exceptions import mask_secrets


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:hunter2@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:hunt@r2@h/db", "postgresql://u:***@h/db"),  # '@' in the password
        ("postgresql://u:hun/ter2@h/db", "postgresql://u:***@h/db"),  # '/' in the password
        ("postgresql://h/db?password=hunter2", "postgresql://h/db?password=***"),
        (
            "postgres://h/db?sslmode=require&sslpassword=hunter2&passfile=/home/u/.pgpass",
            "postgres://h/db?sslmode=require&sslpassword=***&passfile=***",
        ),
        ("postgresql://h/db?p%61ssword=hunter2", "postgresql://h/db?p%61ssword=***"),
        ("postgresql://h/db?PASSWORD=hunter2#x", "postgresql://h/db?PASSWORD=***#x"),
        (
            "http://h:4318/v1/traces?api_key=a&client_secret=b&token=c&keepalives=1",
            "http://h:4318/v1/traces?api_key=***&client_secret=***&token=***&keepalives=1",
        ),
        ("host=h password=hunter2 dbname=d", "host=h password=*** dbname=d"),
        (
            "store URL 'postgresql://u:hunter2@h/db?password=hunter3': unknown option 'x'",
            "store URL 'postgresql://u:***@h/db?password=***': unknown option 'x'",
        ),
        ("http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"),
        ("sqlite:////var/lib/calls.db?batch_size=5", "sqlite:////var/lib/calls.db?batch_size=5"),
        ("no URL here: 3 calls written", "no URL here: 3 calls written"),
    ],
)
def test_every_secret_a_url_can_carry_is_masked(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown
