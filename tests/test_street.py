"""The simulated street: determinism, ground truth, and replaying a city's event CSV."""

import itertools
import math

import pytest

from luciole.simulators.parking_replay import ReplayError, load, street_from_csv
from luciole.simulators.street import Street, occupancy_profile


@pytest.fixture(scope="module")
def street():
    return Street(8, seed=11, duration_s=6 * 3600, start_of_day_s=8 * 3600)


def test_same_seed_same_street_and_readings(street):
    again = Street(8, seed=11, duration_s=6 * 3600, start_of_day_s=8 * 3600)
    assert again.truth == street.truth
    times = [0.0, 1234.5, 7000.25, 20000.0]
    assert [again.field_ut(b, t) for b in range(8) for t in times] == [
        street.field_ut(b, t) for b in range(8) for t in times
    ]
    other = Street(8, seed=12, duration_s=6 * 3600, start_of_day_s=8 * 3600)
    assert other.truth != street.truth


def test_a_reading_does_not_depend_on_the_order_of_queries(street):
    first = street.field_ut(3, 5000.0)
    for t in range(100):
        street.field_ut(3, t * 7.0)
    assert street.field_ut("bay-003", 5000.0) == first


def test_ground_truth_alternates_and_matches_occupied(street):
    assert street.truth, "a morning street sees traffic"
    for bay in range(street.n_bays):
        states = [occupied for _, occupied in street.truth_of(bay)]
        assert all(a != b for a, b in itertools.pairwise(states))
        for t_s, occupied in street.truth_of(bay):
            assert street.occupied(bay, t_s + 1) == occupied
            assert street.occupied(bay, t_s - 1) != occupied


def test_a_parked_car_moves_its_bays_field_far_more_than_its_neighbours(street):
    for vehicle in street.vehicles:
        if vehicle["kind"] == "car" and vehicle["leave_s"] - vehicle["arrive_s"] > 120:
            break
    bay, parked_s = vehicle["bay"], vehicle["arrive_s"] + 60
    before_s = vehicle["arrive_s"] - 30

    def change(b):
        return math.dist(street.field_ut(b, parked_s), street.field_ut(b, before_s))

    assert change(bay) > 5.0
    for neighbour in (bay - 1, bay + 1):
        if 0 <= neighbour < street.n_bays and not any(
            v["bay"] == neighbour and v["arrive_s"] <= parked_s + 60 and v["leave_s"] >= before_s
            for v in street.vehicles
        ):
            assert change(neighbour) < change(bay) / 3


def test_occupancy_follows_the_birmingham_profile():
    profile = occupancy_profile()
    assert len(profile) == 48
    assert max(profile[20:34]) > 2 * profile[4]  # busier at midday than at 2 am


def test_unknown_bay_is_refused(street):
    with pytest.raises(KeyError, match="no bay"):
        street.field_ut("bay-999", 0.0)


CSV = """\ufeffbay_id,time,occupied,note
12,2024-05-14T08:00:00+02:00,1,arrives
7,2024-05-14T08:05:00+02:00,1,
12,2024-05-14T08:40:00+02:00,0,leaves
7,2024-05-14T08:41:00+02:00,1,heartbeat: no change
7,2024-05-14T09:30:00+02:00,0,
3,2024-05-14T09:00:00+02:00,0,was there before the file starts
"""


def test_replay_plays_the_csv_events_as_ground_truth(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(CSV, encoding="utf-8")
    street = street_from_csv(path, seed=1)
    assert street.bay_ids == ["3", "7", "12"]  # numeric ids in kerb order
    at_8 = 8 * 3600
    assert street.truth_of("12") == [(at_8, True), (at_8 + 2400, False)]
    assert street.truth_of("7") == [(at_8 + 300, True), (at_8 + 5400, False)]
    assert street.occupied("3", at_8) and not street.occupied("3", 9 * 3600 + 1)
    assert street.temperature_c("12", at_8) < street.temperature_c("12", at_8 + 6 * 3600)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "bay,time,occupied\n1,2024-05-14T08:00:00+02:00,1\n",
            "line 1: header lacks column 'bay_id'",
        ),
        (
            "bay_id,time,occupied\n1,2024-05-14 08:00,1\n",
            "line 2, field time: '2024-05-14 08:00' has no UTC offset",
        ),
        (
            "bay_id,time,occupied\n1,2024-05-14T08:00:00+02:00,1\n1,yesterday,0\n",
            "line 3, field time: 'yesterday' is not an ISO-8601 time",
        ),
        (
            "bay_id,time,occupied\n1,2024-05-14T08:00:00+02:00,yes\n",
            "line 2, field occupied: 'yes' is not 0 or 1",
        ),
        ("bay_id,time,occupied\n,2024-05-14T08:00:00+02:00,1\n", "line 2, field bay_id: empty"),
        ("bay_id,time,occupied\n1,2024-05-14T08:00:00+02:00\n", "line 2: 2 fields, expected 3"),
        ("bay_id,time,occupied\n", "no events"),
        ("", "empty file"),
    ],
)
def test_bad_replay_csv_names_the_line_and_field(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayError) as error:
        load(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_replay_file_that_is_not_text(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"bay_id,time,occupied\n\xff\xfe,1,1\n")
    with pytest.raises(ReplayError, match="not UTF-8"):
        load(path)
