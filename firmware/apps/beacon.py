# Museum beacon: marks an exhibit with iBeacon and Eddystone-UID frames, interleaved with
# Eddystone-TLM health (battery, advert count, uptime) that the gateway publishes on
# museum/beacons/{id}. Each frame type is advertised for `frame_ms` in turn.
# the encoding halves only: the decoders would cost the board heap it never uses
from protocols.ble import adv_build as adv
from protocols.ble import eddystone_encode as eddystone
from protocols.ble import ibeacon_encode as ibeacon

REQUIRES = ("radio", "battery")
CONFIG = {
    "ibeacon_uuid": "f7826da6-4fa2-4e98-8024-bc5b71e0893e",
    "major": 1,
    "minor": 1,
    "namespace": "6c756369-6f6c-6500-0000",  # "luciole" + zeros: the city's Eddystone namespace
    "instance": "000000000001",
    "tx_power_dbm": -59,  # measured RSSI at 1 m (iBeacon) / 0 m (Eddystone: add 41)
    "interval_ms": 300,
    "frame_ms": 1000,
}


def _frames(device):
    setting = device.setting
    ibeacon_adv = adv.build(
        manufacturer_data={
            ibeacon.COMPANY_ID: ibeacon.encode(
                setting("ibeacon_uuid"), setting("major"), setting("minor"), setting("tx_power_dbm")
            )
        }
    )
    uid = eddystone.encode_uid(
        setting("namespace").replace("-", ""), setting("instance"), setting("tx_power_dbm") + 41
    )
    uid_adv = adv.build(service_uuids=(eddystone.UUID16,), service_data={eddystone.UUID16: uid})
    return ibeacon_adv, uid_adv


async def main(hal, device):
    radio = hal.open("radio")
    battery = hal.open("battery")
    interval_ms = device.setting("interval_ms")
    frame_ms = device.setting("frame_ms")
    ibeacon_adv, uid_adv = _frames(device)
    adverts = 0
    while True:
        tlm = eddystone.encode_tlm(battery.read_mv(), None, adverts, device.uptime_s())
        tlm_adv = adv.build(service_uuids=(eddystone.UUID16,), service_data={eddystone.UUID16: tlm})
        for data in (ibeacon_adv, uid_adv, tlm_adv):
            radio.advertise(data, interval_ms)
            await hal.clock.sleep_ms(frame_ms)
            adverts += frame_ms // interval_ms
