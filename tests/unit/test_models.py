"""Messages and rooms on the wire: field names from the brief, ISO-8601 UTC millisecond times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chatd.models import Message, Room, iso_millis, utc_now

ISO_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def make_message(**changes: object) -> Message:
    fields: dict[str, object] = {
        "id": "665f1c0e8b3e4a5d6c7b8a90",
        "room": "general",
        "user": "ann",
        "message": "<b>hi</b>",
        "timestamp": datetime(2026, 11, 28, 9, 48, 55, 123456, tzinfo=UTC),
        "seq": 7,
        "client_id": "c-1",
        "user_id": "u_ann",
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


def test_message_to_wire_has_the_brief_field_names_and_values():
    assert make_message().to_wire() == {
        "id": "665f1c0e8b3e4a5d6c7b8a90",
        "room": "general",
        "user": "ann",
        "message": "<b>hi</b>",
        "timestamp": "2026-11-28T09:48:55.123Z",
        "seq": 7,
        "client_id": "c-1",
        "user_id": "u_ann",
    }


def test_an_edited_message_says_when_and_by_which_seq():
    at = datetime(2026, 11, 28, 9, 50, 0, 0, tzinfo=UTC)
    wire = make_message(message="fixed", edited_at=at, edit_seq=9).to_wire()
    assert wire["message"] == "fixed"
    assert wire["edited_at"] == "2026-11-28T09:50:00.000Z"
    assert wire["edit_seq"] == 9


def test_a_deleted_message_keeps_neither_its_text_nor_its_author():
    wire = make_message(deleted=True, deleted_by="u_mod", message="").to_wire()
    assert wire == {
        "id": "665f1c0e8b3e4a5d6c7b8a90",
        "room": "general",
        "seq": 7,
        "timestamp": "2026-11-28T09:48:55.123Z",
        "deleted": True,
        "deleted_by": "u_mod",
    }


def test_edit_and_delete_entries_name_the_message_they_change():
    edit = make_message(id="e" * 24, kind="edit", target="665f1c0e8b3e4a5d6c7b8a90",
                        target_seq=7, seq=9, message="fixed")  # fmt: skip
    assert edit.to_wire() == {
        "type": "edit",
        "room": "general",
        "id": "665f1c0e8b3e4a5d6c7b8a90",
        "seq": 9,
        "message": "fixed",
        "edited_at": "2026-11-28T09:48:55.123Z",
        "user_id": "u_ann",
    }
    scrubbed = make_message(kind="edit", target="t" * 24, seq=9, deleted=True, message="")
    assert scrubbed.to_wire() == {
        "type": "edit", "room": "general", "id": "t" * 24, "seq": 9, "deleted": True,
    }  # fmt: skip
    deletion = make_message(kind="delete", target="t" * 24, seq=10, user_id="u_mod", message="")
    assert deletion.to_wire() == {
        "type": "delete",
        "room": "general",
        "id": "t" * 24,
        "seq": 10,
        "deleted_by": "u_mod",
        "timestamp": "2026-11-28T09:48:55.123Z",
    }


def test_timestamp_truncates_to_milliseconds_with_z_suffix():
    moment = datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)
    assert iso_millis(moment) == "2026-01-02T03:04:05.999Z"


def test_timestamp_on_a_whole_second_still_shows_milliseconds():
    assert iso_millis(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"


def test_timestamp_in_another_zone_is_converted_to_utc():
    cet = timezone(timedelta(hours=1))
    moment = datetime(2026, 1, 1, 0, 30, 0, 250000, tzinfo=cet)
    assert iso_millis(moment) == "2025-12-31T23:30:00.250Z"


def test_naive_timestamp_is_taken_as_utc():
    # MongoDB returns naive UTC datetimes unless the client is tz_aware.
    assert iso_millis(datetime(2026, 5, 6, 7, 8, 9, 10000)) == "2026-05-06T07:08:09.010Z"


def test_utc_now_is_aware_and_holds_whole_milliseconds():
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert now.microsecond % 1000 == 0
    assert ISO_MILLIS_Z.fullmatch(iso_millis(now))


def test_message_is_immutable():
    message = make_message()
    with pytest.raises(AttributeError):
        message.seq = 8  # type: ignore[misc]


def test_room_to_wire_carries_online_count_and_times():
    room = Room(
        name="general",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        last_message_at=datetime(2026, 1, 2, 12, 0, 0, 5000, tzinfo=UTC),
        last_seq=12,
    )
    assert room.to_wire(3) == {
        "name": "general",
        "created_at": "2026-01-01T00:00:00.000Z",
        "last_message_at": "2026-01-02T12:00:00.005Z",
        "last_seq": 12,
        "online": 3,
    }


def test_room_without_messages_has_null_last_message_at():
    room = Room(name="quiet", created_at=utc_now(), last_message_at=None, last_seq=0)
    wire = room.to_wire(0)
    assert wire["last_message_at"] is None
    assert ISO_MILLIS_Z.fullmatch(wire["created_at"])
