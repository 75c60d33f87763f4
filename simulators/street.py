"""The simulated street: bays along a kerb, vehicles coming and going, what each bay's in-ground
magnetometer reads.

Frame: x along the kerb, y across it (towards the road), z up; metres, microtesla (uT). Bays are
perpendicular to the kerb (the worst case for a neighbour's leakage: the next car is one bay
width away), each with a magnetometer buried at its centre. A vehicle is a handful of magnetic
dipoles under its body (engine, axles, floor pan): each has an induced moment along Earth's
field plus a permanent one of random direction, so every vehicle has its own signature. Weak
vehicles (high chassis, little steel) sit higher and carry less. A sensor reads Earth's field
(Issy-les-Moulineaux: 21.1 uT horizontal, 42.9 uT down), its own hard-iron offset, every vehicle
within two bays (parked or manoeuvring), a temperature drift over the day, and noise.

Ground truth: a bay is occupied from the moment an arriving car is half inside it (its centre
crosses the bay's road edge) until a leaving car is half out. The manoeuvres around those
instants take a few seconds, so the field ramps rather than steps.

Everything is drawn from one seed: the same seed gives the same street, and `field_ut(bay, t_s)`
is a pure function of its arguments (its noise too), so callers may query in any order.
"""

import bisect
import csv
import functools
import math
from datetime import datetime
from pathlib import Path

import numpy as np

BIRMINGHAM_CSV = Path(__file__).resolve().parent / "data/parking/birmingham-uci-dataset.csv"
DAY_S = 86400
EARTH_H_UT = 21.1  # WMM at Issy-les-Moulineaux (48.8 N, 2.3 E): horizontal component
EARTH_Z_UT = -42.9  # vertical component, pointing down (z is up)
_MU0_4PI_UT = 0.1  # mu0 / 4 pi in uT m^3 / (A m^2)
_SENSOR_DEPTH_M = 0.05
_NEIGHBOURS = 2  # bays either side whose vehicles a sensor feels; further ones add < 0.05 uT
_HALF_IN = 1 - math.sqrt(0.5)  # fraction of an ease-out approach after which the car is half in
_ENTRY_M = 5.0  # how far from its resting place a manoeuvre starts (arriving) or ends (leaving)
_NOISE_TABLE = 1 << 16

# Vehicle kinds: (share of arrivals, ground clearance range m, steel factor range). Moments are
# set so that an ordinary car changes the field over its bay's sensor by 15-60 uT, the range
# published for in-ground sensors (e.g. Honeywell AN218, Cheung & Varaiya 2007).
KINDS = {
    "car": (0.79, (0.13, 0.19), (0.7, 1.4)),
    "van": (0.13, (0.17, 0.24), (1.3, 2.2)),
    "weak": (0.08, (0.32, 0.45), (0.25, 0.45)),
}
# Dipoles under a vehicle: (along its length from its centre, across, height above the
# clearance, moment in A m^2: about 200 A m^2 in all for an ordinary car).
_DIPOLES = (
    (1.55, 0.0, 0.35, 72.0),  # engine block
    (1.35, -0.6, 0.15, 27.0),  # front axle and wheels
    (1.35, 0.6, 0.15, 27.0),
    (-1.35, -0.6, 0.15, 24.0),  # rear axle and wheels
    (-1.35, 0.6, 0.15, 24.0),
    (0.5, 0.0, 0.05, 13.5),  # floor pan and tunnel
    (-0.5, 0.0, 0.05, 13.5),
    (-2.0, 0.0, 0.1, 9.0),  # exhaust and boot floor
)


def default_bay_ids(n_bays):
    """bay-000, bay-001, ...: a street's bays along the kerb when it is not given their ids."""
    return [f"bay-{i:03d}" for i in range(n_bays)]


@functools.cache
def occupancy_profile(weekend=False):
    """Mean occupancy (0..1) per half hour of the day, 48 values, from the Birmingham car parks
    (rows with occupancy out of 0..capacity dropped). The data covers 07:30-17:00; outside it the
    profile falls linearly to its night level (two thirds of the 07:30 value) at 22:00 and rises
    from it after 06:00."""
    sums = [0.0] * 48
    counts = [0] * 48
    with open(BIRMINGHAM_CSV, newline="") as f:
        for row in csv.DictReader(f):
            capacity, occupied = int(row["Capacity"]), int(row["Occupancy"])
            if not 0 <= occupied <= capacity or capacity == 0:
                continue
            when = datetime.strptime(row["LastUpdated"], "%Y-%m-%d %H:%M:%S")
            if (when.weekday() >= 5) != weekend:
                continue
            slot = when.hour * 2 + when.minute // 30
            sums[slot] += occupied / capacity
            counts[slot] += 1
    known = [slot for slot in range(48) if counts[slot] >= 100]
    first = known[0]
    night = sums[first] / counts[first] * 2 / 3
    # anchors (slot, value) around the clock, then linear interpolation between them
    anchors = [(12, night), *((s, sums[s] / counts[s]) for s in known), (44, night)]
    slots, values = zip(*anchors, strict=True)
    profile = np.interp(np.arange(48), slots, values, period=48)
    return tuple(float(v) for v in profile)


class Street:
    """N bays along a kerb and the vehicles that park in them.

    stays: [(bay, arrive_s, leave_s, kind or None)] with ground-truth times in seconds from the
    street's t = 0 (bay: index); None draws a day of traffic from the Birmingham profile instead.
    bay_ids: names of the bays (default "bay-000", ...). Times of day (temperature) count from
    start_of_day_s: t = 0 is that many seconds after midnight.
    """

    def __init__(
        self,
        n_bays=50,
        seed=0,
        duration_s=DAY_S,
        stays=None,
        bay_ids=None,
        pitch_m=2.6,
        peak_occupancy=0.85,
        mean_stay_s=4500.0,
        weekend=False,
        noise_ut=0.35,
        drift_ut_per_c=0.04,
        temperature_swing_c=20.0,
        start_of_day_s=0.0,
    ):
        if n_bays < 1:
            raise ValueError("a street needs at least one bay")
        self.n_bays = n_bays
        self.seed = seed
        self.duration_s = float(duration_s)
        self.bay_ids = list(bay_ids) if bay_ids else default_bay_ids(n_bays)
        if len(self.bay_ids) != n_bays or len(set(self.bay_ids)) != n_bays:
            raise ValueError("bay_ids must name every bay once")
        self._index = {bay_id: i for i, bay_id in enumerate(self.bay_ids)}
        self.pitch_m = pitch_m
        self.noise_ut = noise_ut
        self.start_of_day_s = start_of_day_s
        self.temperature_swing_c = temperature_swing_c
        rng = np.random.default_rng(seed)

        kerb_azimuth = rng.uniform(0, 2 * math.pi)  # the street runs in any direction
        self._earth_world = np.array(
            [EARTH_H_UT * math.cos(kerb_azimuth), EARTH_H_UT * math.sin(kerb_azimuth), EARTH_Z_UT]
        )
        yaw = rng.normal(0, math.radians(10), n_bays)  # installation error about the vertical
        self._yaw_cos, self._yaw_sin = np.cos(yaw), np.sin(yaw)
        hard_iron = rng.normal(0, 3.0, (n_bays, 3))  # rebar, the sensor's own offset
        self._drift_coeff = rng.normal(0, drift_ut_per_c, (n_bays, 3))
        self._sun = rng.uniform(0.6, 1.0, n_bays)  # shade makes some bays swing less
        self._positions = np.stack(
            [np.arange(n_bays) * pitch_m, np.full(n_bays, 2.5), np.full(n_bays, -_SENSOR_DEPTH_M)],
            axis=1,
        )
        self._static_offset = [
            self._to_sensor(i, self._earth_world) + hard_iron[i] for i in range(n_bays)
        ]
        self._noise = [tuple(row) for row in rng.standard_normal((_NOISE_TABLE, 3)) * noise_ut]

        if stays is None:
            stays = self._draw_stays(rng, peak_occupancy, mean_stay_s, weekend)
        self.vehicles = [self._vehicle(rng, *stay) for stay in self._checked(stays)]
        self.truth = sorted(
            [(v["bay"], v["arrive_s"], True) for v in self.vehicles]
            + [(v["bay"], v["leave_s"], False) for v in self.vehicles],
            key=lambda e: (e[1], e[0]),
        )
        self._timelines = [self._timeline(i) for i in range(n_bays)]

    # ---- queries -------------------------------------------------------------------------

    def index(self, bay):
        """A bay's index from its index or its id."""
        if isinstance(bay, str):
            try:
                return self._index[bay]
            except KeyError:
                raise KeyError(f"no bay {bay!r} in this street") from None
        if not 0 <= bay < self.n_bays:
            raise KeyError(f"no bay {bay} in this street of {self.n_bays}")
        return bay

    def field_ut(self, bay, t_s):
        """What the bay's magnetometer reads at t_s: (x, y, z) in uT, in the sensor's own axes."""
        i = self.index(bay)
        breaks, static, moving = self._timelines[i]
        segment = bisect.bisect_right(breaks, t_s) - 1
        x, y, z = static[segment]
        for vehicle in moving[segment]:
            dx, dy, dz = self._moving_field(i, vehicle, t_s)
            x, y, z = x + dx, y + dy, z + dz
        c = self._drift_coeff[i]
        warm = self.temperature_c(i, t_s) - 15.0
        nx, ny, nz = self._noise[_mix(self.seed, i, round(t_s * 1000)) & (_NOISE_TABLE - 1)]
        return (
            float(x + c[0] * warm + nx),
            float(y + c[1] * warm + ny),
            float(z + c[2] * warm + nz),
        )

    def empty_field_ut(self, bay, t_s):
        """What the bay's magnetometer reads at t_s with no vehicle near, noise aside: the
        baseline a technician's calibration on the empty bay finds."""
        i = self.index(bay)
        warm = self.temperature_c(i, t_s) - 15.0
        return tuple(float(v) for v in self._static_offset[i] + self._drift_coeff[i] * warm)

    def temperature_c(self, bay, t_s):
        """The sensor's temperature: a daily swing peaking at 15:00, smaller for shaded bays."""
        day_s = (self.start_of_day_s + t_s) % DAY_S
        swing = self.temperature_swing_c / 2 * self._sun[self.index(bay)]
        return 15.0 + swing * math.cos(2 * math.pi * (day_s - 15 * 3600) / DAY_S)

    def occupied(self, bay, t_s):
        """Ground truth: is the bay occupied at t_s?"""
        i = self.index(bay)
        return any(v["bay"] == i and v["arrive_s"] <= t_s < v["leave_s"] for v in self.vehicles)

    def truth_of(self, bay):
        """Ground truth of one bay: [(t_s, occupied)] in time order."""
        i = self.index(bay)
        return [(t, occupied) for b, t, occupied in self.truth if b == i]

    # ---- construction --------------------------------------------------------------------

    def _draw_stays(self, rng, peak_occupancy, mean_stay_s, weekend):
        """Each bay alternates vacant and occupied; arrivals come at the rate that makes the
        expected occupancy follow the profile (occupancy p with mean stay S needs an arrival
        rate p / (S (1 - p)) while vacant); stays are log-normal (many short, a few long)."""
        profile = np.array(occupancy_profile(weekend))
        profile = np.clip(profile * peak_occupancy / profile.max(), 0.02, 0.95)
        sigma = 1.0
        median_s = mean_stay_s / math.exp(sigma**2 / 2)

        def rate_per_s(t):
            p = np.interp(
                (self.start_of_day_s + t) % DAY_S / 1800, np.arange(48), profile, period=48
            )
            return p / (mean_stay_s * (1 - p))

        max_rate = float(profile.max() / (mean_stay_s * (1 - profile.max())))

        def next_arrival(t):
            while t < self.duration_s:  # thinning: candidates at the peak rate
                t += float(rng.exponential(1 / max_rate))
                if rng.random() < rate_per_s(t) / max_rate:
                    return t
            return t

        stays = []
        for bay in range(self.n_bays):
            if rng.random() < rate_per_s(0.0) * mean_stay_s / (1 + rate_per_s(0.0) * mean_stay_s):
                t = -float(rng.uniform(0, median_s))  # a car was already there at t = 0
            else:
                t = next_arrival(0.0)
            while t < self.duration_s:
                stay_s = max(90.0, float(rng.lognormal(math.log(median_s), sigma)))
                stays.append((bay, t, t + stay_s, None))
                # the bay stays free at least a little while before the next car
                t = next_arrival(t + stay_s + float(rng.uniform(30.0, 120.0)))
        return stays

    def _checked(self, stays):
        out = []
        by_bay = {}
        for bay, arrive, leave, *kind in stays:
            by_bay.setdefault(self.index(bay), []).append((float(arrive), float(leave), *kind))
        for bay, items in sorted(by_bay.items()):
            items.sort()
            for n, (arrive, leave, *kind) in enumerate(items):
                if leave <= arrive:
                    raise ValueError(f"bay {self.bay_ids[bay]}: a stay leaves before it arrives")
                if n and arrive < items[n - 1][1]:
                    raise ValueError(f"bay {self.bay_ids[bay]}: two stays overlap at {arrive} s")
                out.append((bay, arrive, leave, kind[0] if kind else None))
        return out

    def _vehicle(self, rng, bay, arrive_s, leave_s, kind):
        names = list(KINDS)
        if kind is None:
            kind = names[rng.choice(len(names), p=[KINDS[k][0] for k in names])]
        _, clearance, steel = KINDS[kind]
        clearance = rng.uniform(*clearance)
        steel = rng.uniform(*steel)
        local = np.array([(u, v, clearance + h) for u, v, h, _ in _DIPOLES])
        earth_dir = self._earth_world / np.linalg.norm(self._earth_world)
        scale = np.array([s for *_, s in _DIPOLES]) * steel * rng.uniform(0.7, 1.3, len(_DIPOLES))
        permanent = rng.normal(0, 0.6, (len(_DIPOLES), 3))
        moments = (earth_dir + permanent) * scale[:, None]
        if rng.random() < 0.5:  # nose in or reversed in
            local[:, :2] *= -1
        # perpendicular bay: the vehicle's length runs across the kerb
        offset = np.array([rng.normal(0, 0.15), rng.normal(0, 0.25), 0.0])
        centre = self._positions[bay] * [1, 1, 0] + offset
        dipoles = np.stack([centre[0] + local[:, 1], centre[1] + local[:, 0], local[:, 2]], axis=1)
        # manoeuvres: an ease-out approach ending at rest, an ease-in departure from rest
        approach_s = rng.uniform(4.0, 9.0)
        depart_s = rng.uniform(4.0, 8.0)
        room = leave_s - arrive_s
        if (1 - _HALF_IN) * approach_s + _HALF_IN * depart_s > room * 0.8:
            shrink = room * 0.8 / ((1 - _HALF_IN) * approach_s + _HALF_IN * depart_s)
            approach_s, depart_s = approach_s * shrink, depart_s * shrink
        return {
            "bay": bay,
            "kind": kind,
            "arrive_s": arrive_s,
            "leave_s": leave_s,
            "approach": (arrive_s - _HALF_IN * approach_s, approach_s),
            "departure": (leave_s - (1 - _HALF_IN) * depart_s, depart_s),
            "dipoles": dipoles,
            "moments": moments,
        }

    def _timeline(self, i):
        """Breakpoints of bay i's field, the static field in each segment (everything parked,
        Earth, hard iron) and the vehicles on the move during it."""
        near = [v for v in self.vehicles if abs(v["bay"] - i) <= _NEIGHBOURS]
        changes = []  # (t, +-field of a parked vehicle or None, vehicle starting/stopping to move)
        for v in near:
            parked = self._to_sensor(i, self._dipole_field(i, v["dipoles"], v["moments"]))
            start, length = v["approach"]
            leave_start, leave_length = v["departure"]
            changes += [
                (start, None, ("move", v)),
                (start + length, parked, ("stop", v)),
                (leave_start, -parked, ("move", v)),
                (leave_start + leave_length, None, ("stop", v)),
            ]
        changes.sort(key=lambda c: c[0])
        breaks = [-math.inf]
        static = [tuple(self._static_offset[i])]
        moving = [()]
        current = np.array(self._static_offset[i])
        on_the_move = []
        for t, delta, (what, v) in changes:
            if delta is not None:
                current = current + delta
            if what == "move":
                on_the_move.append(v)
            else:
                on_the_move.remove(v)
            if breaks[-1] == t:
                static[-1], moving[-1] = tuple(current), tuple(on_the_move)
            else:
                breaks.append(t)
                static.append(tuple(current))
                moving.append(tuple(on_the_move))
        return breaks, static, moving

    def _moving_field(self, i, v, t_s):
        start, length = v["approach"]
        if start <= t_s < start + length:
            away_m = _ENTRY_M * (1 - (t_s - start) / length) ** 2
        else:
            start, length = v["departure"]
            away_m = _ENTRY_M * ((t_s - start) / length) ** 2
        dipoles = v["dipoles"] + [0.0, away_m, 0.0]
        return self._to_sensor(i, self._dipole_field(i, dipoles, v["moments"]))

    def _dipole_field(self, i, dipoles, moments):
        """Sum of the dipoles' fields at bay i's sensor, world axes, uT."""
        r = self._positions[i] - dipoles
        dist = np.linalg.norm(r, axis=1)
        unit = r / dist[:, None]
        along = np.sum(moments * unit, axis=1)
        field = (3 * along[:, None] * unit - moments) / dist[:, None] ** 3
        return _MU0_4PI_UT * field.sum(axis=0)

    def _to_sensor(self, i, world):
        c, s = self._yaw_cos[i], self._yaw_sin[i]
        return np.array([c * world[0] + s * world[1], -s * world[0] + c * world[1], world[2]])


def _mix(seed, bay, t_ms):
    """A well-spread 32-bit hash of (seed, bay, millisecond): the noise sample's index."""
    h = (seed * 0x9E3779B1 + bay * 0x85EBCA77 + t_ms * 0xC2B2AE3D) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    return h ^ (h >> 16)
