"""A city's occupancy event stream (CSV) played through the simulated street.

Format (docs/parking-replay.md): a header naming at least bay_id, time and occupied (any order,
other columns ignored, a UTF-8 BOM tolerated); one event per row: the bay, an ISO-8601 time with
its UTC offset, 1 when a vehicle arrived and 0 when it left. Repeated states are heartbeats and
change nothing. The street's t = 0 is local midnight of the first event's day (in that event's
offset); bays go along the kerb in id order (numerically when every id is a number).
"""

import csv
from datetime import datetime, timedelta

from .street import DAY_S, Street

COLUMNS = ("bay_id", "time", "occupied")
_BEFORE_S = 600.0  # a bay whose first event is a departure had its car from this long before
_AFTER_S = 3600.0  # a stay still open at the end leaves this long after the last event


class ReplayError(ValueError):
    """A bad replay file: the message names the file, line, field and value."""


def load(path):
    """[(bay_id, datetime with offset, occupied bool)] in file order."""
    name = str(path)
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed by the with below)
    except OSError as e:
        raise ReplayError(f"{name}: cannot read: {e.strerror}") from None
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ReplayError(
                f"{name}: empty file, expected a header {','.join(COLUMNS)}"
            ) from None
        except UnicodeDecodeError:
            raise ReplayError(f"{name} line 1: not UTF-8 text") from None
        header = [h.strip().lower() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ReplayError(f"{name} line 1: header lacks column {missing[0]!r}")
        at = {c: header.index(c) for c in COLUMNS}
        events = []
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) < len(header):
                    raise ReplayError(
                        f"{name} line {line}: {len(row)} fields, expected {len(header)}"
                    )
                events.append(_event(name, line, *(row[at[c]].strip() for c in COLUMNS)))
        except UnicodeDecodeError:
            raise ReplayError(f"{name} line {reader.line_num + 1}: not UTF-8 text") from None
        except csv.Error as e:
            raise ReplayError(f"{name} line {reader.line_num}: {e}") from None
    if not events:
        raise ReplayError(f"{name}: no events after the header")
    return events


def _event(name, line, bay_id, time_text, occupied_text):
    if not bay_id:
        raise ReplayError(f"{name} line {line}, field bay_id: empty")
    try:
        when = datetime.fromisoformat(time_text)
    except ValueError:
        raise ReplayError(
            f"{name} line {line}, field time: {time_text!r} is not an ISO-8601 time"
        ) from None
    if when.utcoffset() is None:
        raise ReplayError(
            f"{name} line {line}, field time: {time_text!r} has no UTC offset (add e.g. +01:00)"
        )
    if occupied_text not in ("0", "1"):
        raise ReplayError(f"{name} line {line}, field occupied: {occupied_text!r} is not 0 or 1")
    return bay_id, when, occupied_text == "1"


def stays(events):
    """Events -> (bay ids along the kerb, t = 0 as a datetime, [(bay index, arrive_s, leave_s)],
    duration_s)."""
    first = min(when for _, when, _ in events)
    epoch = first.replace(hour=0, minute=0, second=0, microsecond=0)
    last = max(when for _, when, _ in events)
    end_s = (last - epoch) / timedelta(seconds=1) + _AFTER_S
    ids = sorted({bay for bay, _, _ in events}, key=_bay_order)
    index = {bay: i for i, bay in enumerate(ids)}
    by_bay = {}
    for bay, when, occupied in sorted(events, key=lambda e: e[1]):
        by_bay.setdefault(bay, []).append(((when - epoch) / timedelta(seconds=1), occupied))
    out = []
    for bay, timeline in by_bay.items():
        arrived = None if timeline[0][1] else min(0.0, timeline[0][0]) - _BEFORE_S
        for t_s, occupied in timeline:
            if occupied and arrived is None:
                arrived = t_s
            elif not occupied and arrived is not None:
                if t_s > arrived:
                    out.append((index[bay], arrived, t_s))
                arrived = None
        if arrived is not None:
            out.append((index[bay], arrived, end_s))
    return ids, epoch, sorted(out, key=lambda s: (s[1], s[0])), end_s


def street_from_csv(path, seed=0, **street_options):
    """The street replaying the file's events: its ground truth is the file's state changes.
    Extra options go to Street (noise_ut, pitch_m, ...)."""
    ids, epoch, replayed, end_s = stays(load(path))
    midnight = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
    return Street(
        len(ids),
        seed=seed,
        duration_s=end_s,
        stays=[(bay, arrive, leave, None) for bay, arrive, leave in replayed],
        bay_ids=ids,
        start_of_day_s=(epoch - midnight).total_seconds() % DAY_S,
        **street_options,
    )


def _bay_order(bay_id):
    return (0, int(bay_id), "") if bay_id.isdigit() else (1, 0, bay_id)
