# Energy account of a duty-cycled sensor, from the board's power model (boards/<name>.json
# "power_ua": sleep, cpu_active, radio_tx, sensor_active, sensor_idle, in microamps). Pure
# arithmetic, the same on the board and in the benches: charge in microamp-seconds (uAs) per
# consumer, then the average current and the battery life it gives.
#
# What one action costs is the model below; the figures behind each are in docs/parking-sensor.md.
# Sleep and the sensor's power-down current are counted over all the elapsed time, active
# currents on top of them (slightly pessimistic: the board does not sleep while it is awake).

SAMPLE_CPU_S = 0.002  # wake, trigger and read one single-shot conversion over I2C, detector update
SAMPLE_SENSOR_S = 0.0065  # magnetometer single conversion in its high-performance mode
ADVERT_RADIO_S = 0.003  # one advertising event: 3 channels, ~0.4 ms PDU each, plus ramp-up
ADVERT_CPU_S = 0.003  # the BLE stack around that event
BURST_CPU_S = 0.02  # starting and stopping the BLE controller once per burst of adverts
SECONDS_PER_YEAR = 365.25 * 86400


class Energy:
    """Charge spent so far by consumer. power_ua: the board's power model."""

    def __init__(self, power_ua):
        self.power_ua = power_ua
        self.elapsed_s = 0.0
        self.uas = {"sleep": 0.0, "cpu": 0.0, "radio": 0.0, "sensor": 0.0}
        self.sample_count = 0
        self.advert_count = 0

    def elapsed(self, seconds):
        """Time passing: the floor currents (sleep, sensor powered down)."""
        p = self.power_ua
        self.elapsed_s += seconds
        self.uas["sleep"] += p["sleep"] * seconds
        self.uas["sensor"] += p["sensor_idle"] * seconds

    def sample(self, count=1):
        """count magnetometer readings."""
        p = self.power_ua
        self.sample_count += count
        self.uas["cpu"] += p["cpu_active"] * SAMPLE_CPU_S * count
        self.uas["sensor"] += p["sensor_active"] * SAMPLE_SENSOR_S * count

    def adverts(self, events, bursts=1):
        """events advertising events sent in bursts (each burst wakes the radio once)."""
        p = self.power_ua
        self.advert_count += events
        self.uas["radio"] += p["radio_tx"] * ADVERT_RADIO_S * events
        self.uas["cpu"] += p["cpu_active"] * (ADVERT_CPU_S * events + BURST_CPU_S * bursts)

    def average_ua(self):
        if self.elapsed_s <= 0:
            return 0.0
        return sum(self.uas.values()) / self.elapsed_s

    def battery_years(self, capacity_mah):
        """Years on a cell of that capacity at the average current so far (None before any
        time has passed). Self-discharge and cold derating are not in the model."""
        average = self.average_ua()
        if average <= 0:
            return None
        return capacity_mah * 1000 * 3600 / average / SECONDS_PER_YEAR

    def report(self, capacity_mah=None):
        """The account as a dict (for parking-status and benches): uAs per consumer."""
        out = {
            "elapsed_s": round(self.elapsed_s, 1),
            "average_ua": round(self.average_ua(), 2),
            "samples": self.sample_count,
            "adverts": self.advert_count,
        }
        for name in self.uas:
            out[name + "_uas"] = round(self.uas[name], 1)
        if capacity_mah:
            years = self.battery_years(capacity_mah)
            out["battery_years"] = None if years is None else round(years, 1)
        return out
