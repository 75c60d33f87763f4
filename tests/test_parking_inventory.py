"""Bay inventories: the real Melbourne Opendatasoft export, GeoJSON, and unusable files."""

import json
from pathlib import Path

import pytest

from luciole.edge import parking_inventory
from luciole.edge.parking_inventory import InventoryError, read

MELBOURNE = (
    Path(__file__).resolve().parent.parent
    / "simulators/data/parking/melbourne-on-street-parking-bay-sensors.csv"
)


def test_the_melbourne_export_imports_with_each_unusable_row_reported():
    assert MELBOURNE.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM is there
    inventory = read(MELBOURNE)
    # 3,309 bays, 228 of them with an empty Zone_Number and no street: no site to count them in
    assert len(inventory.bays) == 3309 - 228
    assert len(inventory.skipped) == 228
    assert {(s.field, s.value) for s in inventory.skipped} == {("Zone_Number", "")}
    assert inventory.skipped[0].row == "line 2"  # the header is line 1
    assert str(inventory.skipped[0]) == (
        "line 2: Zone_Number = '': no site, zone or street: the bay belongs to no site"
    )
    # the BOM did not stick to the first column's name; the state columns are left out
    assert inventory.ignored_columns == ["Lastupdated", "Status_Timestamp", "Status_Description"]
    bay = inventory.bays["66222"]  # line 3
    assert (bay.site, bay.lat, bay.lon) == ("zone-7539", -37.81164001991529, 144.96061716652716)
    assert len(inventory.sites) == 331
    assert inventory.sites["zone-7539"].name == "Zone 7539"
    assert sum(b.site == "zone-7250" for b in inventory.bays.values()) == 76


def test_sites_by_site_zone_or_street(tmp_path):
    path = tmp_path / "bays.csv"
    path.write_text(
        "Bay,Latitude,Longitude,Site,Zone,Street\n"
        "A1,48.82,2.27,mairie,,\n"
        "A2,48.82,2.27,,12,Rue Renan\n"
        "A3,48.82,2.27,,,Rue du Général Leclerc\n"
    )
    inventory = read(path)
    assert {b.id: b.site for b in inventory.bays.values()} == {
        "a1": "mairie",
        "a2": "zone-12",
        "a3": "rue-du-general-leclerc",
    }
    assert inventory.sites["rue-du-general-leclerc"].name == "Rue du Général Leclerc"


def test_bad_rows_are_reported_with_line_column_value_and_reason(tmp_path):
    path = tmp_path / "bays.csv"
    path.write_text(
        "id,location,street\n"
        'ok-1,"48.8245, 2.2707",Rue Renan\n'
        'Bay 2,"48.8245, 2.2707",Rue Renan\n'
        'b3,"48.8245",Rue Renan\n'
        'b4,"north, east",Rue Renan\n'
        'b5,"95, 2.27",Rue Renan\n'
        'ok-1,"48.8245, 2.2707",Rue Renan\n'
        'b7,"0, 0",Rue Renan\n'
        "\n"
    )
    inventory = read(path)
    assert list(inventory.bays) == ["ok-1"]
    assert [str(s) for s in inventory.skipped] == [
        "line 3: id = 'Bay 2': a bay id must match [a-z0-9][a-z0-9-]{0,63}",
        "line 4: location = '48.8245': expected \"latitude, longitude\"",
        "line 5: location = 'north, east': not a number",
        "line 6: location = '95, 2.27': latitude must be -90..90 and longitude -180..180",
        "line 7: id = 'ok-1': a bay with this id came earlier",
        "line 8: location = '0, 0': 0, 0 is a missing location, not a bay",
    ]


def test_geojson_points_and_outlines(tmp_path):
    features = [
        {
            "type": "Feature",
            "id": "p1",
            "geometry": {"type": "Point", "coordinates": [2.2707, 48.8245]},
            "properties": {"zone": 7, "name": "Place 1", "colour": "blue"},
        },
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[2.0, 48.0], [2.2, 48.0], [2.2, 48.2], [2.0, 48.2]]],
            },
            "properties": {"spot": "p2", "zone": "7"},
        },
        {"type": "Feature", "geometry": None, "properties": {"spot": "p3", "zone": "7"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.27, "x"]}},
        "not a feature",
    ]
    path = tmp_path / "bays.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    inventory = read(path)
    assert inventory.bays["p1"].name == "Place 1"
    p2 = inventory.bays["p2"]
    assert (p2.site, round(p2.lon, 6), round(p2.lat, 6)) == ("zone-7", 2.1, 48.1)
    assert [s.row for s in inventory.skipped] == ["feature 3", "feature 4", "feature 5"]
    assert inventory.skipped[0].reason == "a bay needs a geometry"
    assert inventory.ignored_columns == ["colour"]
    assert list(inventory.sites) == ["zone-7"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bays.txt", b"id\n", "expected a .csv, .geojson or .json file"),
        ("bays.csv", b"", "empty file"),
        ("bays.csv", b"id,lat,lon\n\xff\xfe,1,2\n", "not UTF-8 text"),
        ("bays.csv", b"name,lat,lon\nx,1,2\n", "no bay id column: expected one of id, spot"),
        ("bays.csv", b"id,street\nx,Rue Renan\n", "no location columns"),
        ("bays.csv", b"id,lat,lon\nx,1,2\n", "no usable bay (1 row(s) skipped; first: line 2"),
        ("bays.geojson", b"{", "not JSON"),
        ("bays.geojson", b'{"type": "Feature"}', "expected a GeoJSON FeatureCollection"),
        ("bays.json", b'{"type": "FeatureCollection", "features": 3}', "features: expected"),
    ],
)
def test_unusable_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InventoryError) as raised:
        read(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path))
    assert "\n" not in str(raised.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(InventoryError, match="cannot read: No such file"):
        read(tmp_path / "nope.csv")


def test_saving_replaces_the_inventory_or_nothing(tmp_path):
    db_path = tmp_path / "parking.db"
    first = tmp_path / "first.csv"
    first.write_text("id,lat,lon,street\nb1,48.8,2.2,Rue A\nb2,48.8,2.2,Rue B\n")
    parking_inventory.save(db_path, read(first))
    assert parking_inventory.known_spots(db_path) == {"b1", "b2"}
    second = tmp_path / "second.csv"
    second.write_text("id,lat,lon,street\nb2,48.8,2.2,Rue B\nb3,48.8,2.2,Rue B\n")
    with pytest.raises(InventoryError, match="bay 'b1' \\(sensor ps-1\\) is not in the new"):
        parking_inventory.save(db_path, read(second), required=[("b1", "sensor ps-1")])
    assert parking_inventory.known_spots(db_path) == {"b1", "b2"}
    parking_inventory.save(db_path, read(second))
    assert parking_inventory.known_spots(db_path) == {"b2", "b3"}
    assert parking_inventory.known_spots(tmp_path / "none.db") is None
