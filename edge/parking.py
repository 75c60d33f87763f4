"""The gateway's parking service: bay states from sensor occupancy, published for the city.

- The bays and sites come from parking.db (`luciole parking import`, parking_inventory.py); a
  sensor is assigned to a bay by `spot` on its `[[devices]]` entry.
- A bay is `occupied` or `free` as its sensor last said, `unknown` before its sensor's first
  occupancy report and once the sensor has been silent for `[parking] unknown_after_s`, `closed`
  while an operator has closed it (command parking-close, until parking-open) whatever its sensor
  says. Any accepted frame from the sensor counts as a sign of life; only frames that carry the
  occupancy object change free/occupied.
- Each bay is published retained on parking/spots/{spot} as a FIWARE ParkingSpot, each site on
  parking/sites/{site_id} as a FIWARE OnStreetParking (keyValues JSON), when they change and once
  at start (the uplink republishes retained states after every reconnect).
- The state is kept in parking.db, so a restarted gateway carries on: a closed bay stays closed,
  a bay whose sensor went silent while the gateway was down turns unknown.
- An import while the gateway runs is picked up within a second: new bays are published, bays no
  longer in the inventory have their retained messages cleared.
"""

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

from . import parking_inventory

log = logging.getLogger("luciole.parking")

OCCUPANCY = 0x23  # the BTHome object id
TICK_S = 1.0  # timeouts are checked and learnt states saved this often
MAX_REASON_CHARS = 200


def status_of(occupied, reported, closed_reason, now, unknown_after_s) -> str:
    """A bay's status from what its sensor last said (None: nothing yet) and when."""
    if closed_reason is not None:
        return "closed"
    if occupied is None or reported is None or now - reported > unknown_after_s:
        return "unknown"
    return "occupied" if occupied else "free"


def iso(time_s: float) -> str:
    """ISO 8601 in UTC with milliseconds, as FIWARE's DateTime."""
    moment = datetime.fromtimestamp(time_s, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


class _Spot:
    __slots__ = ("bay", "closed_reason", "modified", "occupied", "reported", "sensor", "status")

    def __init__(self, bay, sensor, now):
        self.bay, self.sensor = bay, sensor
        self.occupied = self.reported = self.closed_reason = None
        self.status, self.modified = "unknown", now


class ParkingService:
    def __init__(self, db_path, city, topics, sensors, unknown_after_s, publish, clock=time.time):
        """`sensors`: device id -> bay id; `publish(topic, payload)`: a coroutine that publishes
        a retained state (the uplink's retain); `city`: the site of the URNs (`[gateway] site`)."""
        self.city, self.topics = city, topics
        self.unknown_after_s = unknown_after_s
        self.publish, self.clock = publish, clock
        self.db = parking_inventory.connect(db_path)
        self.db_path = db_path
        self.assigned = dict(sensors)
        self.spots: dict[str, _Spot] = {}
        self.sites = {}
        self.site_counts = {}  # site id -> [available, occupied, modified]
        self._sensor_spot = {}
        self._changed_spots, self._changed_sites, self._unsaved = set(), set(), set()
        self._touched_sites = set()
        self._cleared = []  # topics of bays or sites no longer in the inventory
        self._wake = asyncio.Event()
        self._version = None
        self._load()

    # -- the inventory and what was learnt -----------------------------------------------------

    def _load(self):
        self._version = self.db.execute("PRAGMA data_version").fetchone()[0]
        bays, sites = parking_inventory.load(self.db)
        if not bays:
            log.warning("no parking inventory in %s: run `luciole parking import`", self.db_path)
        now = self.clock()
        stored = {
            row[0]: row[1:]
            for row in self.db.execute(
                "SELECT spot, sensor, occupied, reported, closed_reason, status, modified "
                "FROM spot_state"
            )
        }
        self._cleared += [self.topics.build("parking_spot", s) for s in self.spots if s not in bays]
        self._cleared += [
            self.topics.build("parking_site", s) for s in self.sites if s not in sites
        ]
        self._sensor_spot = {dev: spot for dev, spot in self.assigned.items() if spot in bays}
        sensor_of = {spot: dev for dev, spot in self._sensor_spot.items()}
        spots = {}
        for bay in bays.values():
            spot = spots[bay.id] = _Spot(bay, sensor_of.get(bay.id), now)
            row = stored.get(bay.id)
            if row is not None:
                sensor, occupied, reported, spot.closed_reason, spot.status, spot.modified = row
                if sensor == spot.sensor:  # a sensor moved to another bay says nothing of this one
                    spot.occupied = None if occupied is None else bool(occupied)
                    spot.reported = reported
        self.spots, self.sites = spots, sites
        self.site_counts = {
            row[0]: list(row[1:])
            for row in self.db.execute("SELECT site, available, occupied, modified FROM site_state")
            if row[0] in sites
        }
        self.totals = {site: 0 for site in sites}
        for spot in spots.values():
            self.totals[spot.bay.site] += 1
        for spot_id in spots:
            self._update(spot_id, now)
        # everything once: the uplink republishes only what it was given
        self._changed_spots, self._changed_sites = set(spots), set(sites)
        self._touched_sites = set(sites)
        self._unsaved = set(spots)
        self._count_sites(now)

    def _reload_if_imported(self):
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:  # no other connection committed: no import
            return
        self._version = version
        bays, sites = parking_inventory.load(self.db)
        if set(bays.values()) == {s.bay for s in self.spots.values()} and set(
            sites.values()
        ) == set(self.sites.values()):
            return
        log.info("parking inventory changed: %d bays in %d sites", len(bays), len(sites))
        self._unsaved &= set(bays)  # the import dropped the state of the bays it removed
        self._save()
        self._load()

    # -- what the gateway calls ----------------------------------------------------------------

    def reading(self, device_id, measurements) -> None:
        """An accepted BTHome frame from a device ({"id", "value", ...} measurements)."""
        spot_id = self._sensor_spot.get(device_id)
        if spot_id is None:
            return
        spot = self.spots[spot_id]
        spot.reported = self.clock()
        for m in measurements:
            if m["id"] == OCCUPANCY:
                spot.occupied = bool(m["value"])
        self._unsaved.add(spot_id)
        if self._update(spot_id, spot.reported):
            self._wake.set()

    def close(self, spot_id, reason=None) -> dict:
        spot = self._spot(spot_id)
        spot.closed_reason = reason or ""  # "" is closed without a reason; None is open
        self._changed(spot_id)
        return self.describe(spot_id)

    def open(self, spot_id) -> dict:
        spot = self._spot(spot_id)
        spot.closed_reason = None
        self._changed(spot_id)
        return self.describe(spot_id)

    def commands(self) -> dict:
        """The operator's commands on the gateway (cmd/{gateway}/NAME): name -> handler(args)."""
        return {"parking-close": self._close_command, "parking-open": self._open_command}

    def _close_command(self, args) -> dict:
        _allowed(args, "parking-close", {"spot", "reason"})
        reason = args.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS):
            raise ValueError(f'"reason" must be text of at most {MAX_REASON_CHARS} characters')
        result = self.close(args["spot"], reason)
        log.info("parking-close %s%s", args["spot"], f" ({reason})" if reason else "")
        return result

    def _open_command(self, args) -> dict:
        _allowed(args, "parking-open", {"spot"})
        result = self.open(args["spot"])
        log.info("parking-open %s", args["spot"])
        return result

    def describe(self, spot_id) -> dict:
        spot = self.spots[spot_id]
        return {
            "spot": spot_id,
            "status": spot.status,
            "reason": spot.closed_reason or None,
            "sensor": spot.sensor,
            "since": iso(spot.modified),
        }

    def _spot(self, spot_id):
        if not isinstance(spot_id, str) or spot_id not in self.spots:
            raise ValueError(f"no bay {spot_id!r} in this gateway's parking inventory")
        return self.spots[spot_id]

    def _changed(self, spot_id):
        """Closed or opened: published even when the status stays (the reason may change)."""
        self._unsaved.add(spot_id)
        self._changed_spots.add(spot_id)
        self._update(spot_id, self.clock())
        self._wake.set()

    def _update(self, spot_id, now) -> bool:
        """Recomputes a bay's status; True when it changed."""
        spot = self.spots[spot_id]
        status = status_of(
            spot.occupied, spot.reported, spot.closed_reason, now, self.unknown_after_s
        )
        if status == spot.status:
            return False
        spot.status, spot.modified = status, now
        self._unsaved.add(spot_id)
        self._changed_spots.add(spot_id)
        self._touched_sites.add(spot.bay.site)
        return True

    def _count_sites(self, now):
        """Recounts the sites whose bays changed; those whose counts differ are published."""
        touched, self._touched_sites = self._touched_sites, set()
        counts = {site: [0, 0] for site in touched}
        for spot in self.spots.values():
            if spot.bay.site in counts and spot.status in ("free", "occupied"):
                counts[spot.bay.site][spot.status == "occupied"] += 1
        for site, (available, occupied) in counts.items():
            known = self.site_counts.get(site)
            if known is None or known[:2] != [available, occupied]:
                self.site_counts[site] = [available, occupied, now]
                self._changed_sites.add(site)

    # -- running -------------------------------------------------------------------------------

    async def run(self):
        while True:
            await self._flush()
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except TimeoutError:
                self._reload_if_imported()
                now = self.clock()
                for spot_id in self.spots:
                    self._update(spot_id, now)
            self._wake.clear()

    async def _flush(self):
        now = self.clock()
        self._count_sites(now)
        self._save()
        spots, self._changed_spots = self._changed_spots, set()
        sites, self._changed_sites = self._changed_sites, set()
        cleared, self._cleared = self._cleared, []
        for topic in cleared:
            await self.publish(topic, b"")
        for spot_id in sorted(spots):
            topic = self.topics.build("parking_spot", spot_id)
            await self.publish(topic, _json(self.spot_entity(spot_id)))
        for site_id in sorted(sites):
            topic = self.topics.build("parking_site", site_id)
            await self.publish(topic, _json(self.site_entity(site_id)))

    def _save(self):
        if not self._unsaved:
            return
        rows = []
        for spot_id in self._unsaved:
            s = self.spots.get(spot_id)
            if s is not None:
                occupied = None if s.occupied is None else int(s.occupied)
                rows.append(
                    (spot_id, s.sensor, occupied, s.reported, s.closed_reason, s.status, s.modified)
                )
        self._unsaved = set()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO spot_state VALUES (?,?,?,?,?,?,?)", rows)
            self.db.executemany(
                "INSERT OR REPLACE INTO site_state VALUES (?, ?, ?, ?)",
                [(site, *counts) for site, counts in self.site_counts.items()],
            )

    def close_db(self):
        self._save()
        self.db.close()

    # -- FIWARE entities (keyValues) -----------------------------------------------------------

    def spot_entity(self, spot_id) -> dict:
        spot = self.spots[spot_id]
        bay = spot.bay
        entity = {
            "id": f"urn:ngsi-ld:ParkingSpot:{self.city}:{spot_id}",
            "type": "ParkingSpot",
            "name": bay.name,
            "status": spot.status,
            "category": ["onStreet"],
            "refParkingSite": f"urn:ngsi-ld:OnStreetParking:{self.city}:{bay.site}",
            "location": {"type": "Point", "coordinates": [bay.lon, bay.lat]},
            "dateModified": iso(spot.modified),
        }
        if spot.sensor is not None:
            entity["refDevice"] = [f"urn:ngsi-ld:Device:{self.city}:{spot.sensor}"]
        if spot.status == "closed" and spot.closed_reason:
            entity["description"] = f"closed: {spot.closed_reason}"
        return entity

    def site_entity(self, site_id) -> dict:
        site = self.sites[site_id]
        available, occupied, modified = self.site_counts[site_id]
        return {
            "id": f"urn:ngsi-ld:OnStreetParking:{self.city}:{site_id}",
            "type": "OnStreetParking",
            "name": site.name,
            "location": {"type": "Point", "coordinates": [site.lon, site.lat]},
            "totalSpotNumber": self.totals[site_id],
            "availableSpotNumber": available,
            "occupiedSpotNumber": occupied,
            "occupancyModified": iso(modified),
            "occupancyDetectionType": ["singleSpaceDetection"],
        }


def _allowed(args, command, allowed):
    if set(args) - allowed:
        raise ValueError(f"{command} takes {' and '.join(sorted(allowed))}")
    if "spot" not in args:
        raise ValueError(f'{command} needs "spot": a bay id')


def _json(entity) -> bytes:
    return json.dumps(entity, separators=(",", ":"), ensure_ascii=False).encode()
