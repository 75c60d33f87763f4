# Energy account of a duty-cycled sensor, from the board's power model (boards/<name>.json
# "power_ua": sleep, cpu_active, radio_tx, sensor_active, sensor_idle, in microamps). Pure
# arithmetic, the same on the board and in the benches: from what the sensor did (time, readings,
# adverts), the charge in microamp-seconds (uAs) per consumer, the average current and the
# battery life it gives. The caller keeps the counts: a few numbers on the board, where an
# account object would cost it a class and a running sum per consumer.
#
# What one action costs is the model below; the figures behind each are in docs/parking-sensor.md.
# Sleep and the sensor's power-down current are counted over all the elapsed time, active
# currents on top of them (slightly pessimistic: the board does not sleep while it is awake).

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


# wake, trigger and read one single-shot conversion over I2C, detector update
_SAMPLE_CPU_S = const(0.002)
_SAMPLE_SENSOR_S = const(0.0065)  # magnetometer single conversion in its high-performance mode
# one advertising event: 3 channels, ~0.4 ms PDU each, plus ramp-up
_ADVERT_RADIO_S = const(0.003)
_ADVERT_CPU_S = const(0.003)  # the BLE stack around that event
_BURST_CPU_S = const(0.02)  # starting and stopping the BLE controller once per burst of adverts
_SECONDS_PER_YEAR = const(31557600.0)  # 365.25 days


def charges_uas(power_ua, elapsed_s, samples, adverts, bursts):
    """Charge per consumer (uAs) of elapsed_s seconds, samples magnetometer readings and adverts
    advertising events sent in bursts (each burst wakes the radio once)."""
    p = power_ua
    return {
        "sleep": p["sleep"] * elapsed_s,
        "cpu": p["cpu_active"]
        * (_SAMPLE_CPU_S * samples + _ADVERT_CPU_S * adverts + _BURST_CPU_S * bursts),
        "radio": p["radio_tx"] * _ADVERT_RADIO_S * adverts,
        "sensor": p["sensor_idle"] * elapsed_s + p["sensor_active"] * _SAMPLE_SENSOR_S * samples,
    }


def battery_years(average_ua, capacity_mah):
    """Years on a cell of that capacity at that average current (None at no current: before
    any time has passed). Self-discharge and cold derating are not in the model."""
    if average_ua <= 0:
        return None
    return capacity_mah * 1000 * 3600 / average_ua / _SECONDS_PER_YEAR


def report(power_ua, elapsed_s, samples, adverts, bursts, capacity_mah):
    """The account as a dict (for parking-status): uAs per consumer, average current, battery
    years (None before any time has passed)."""
    uas = charges_uas(power_ua, elapsed_s, samples, adverts, bursts)
    average = sum(uas.values()) / elapsed_s if elapsed_s > 0 else 0.0
    out = {
        "elapsed_s": round(elapsed_s, 1),
        "average_ua": round(average, 2),
        "samples": samples,
        "adverts": adverts,
    }
    for name in uas:
        out[name + "_uas"] = round(uas[name], 1)
    years = battery_years(average, capacity_mah)
    out["battery_years"] = None if years is None else round(years, 1)
    return out
