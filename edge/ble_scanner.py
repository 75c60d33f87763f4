"""The gateway's BLE southbound: bleak's BleakScanner on one adapter, decoded by the protocol core.

- Scanning is passive when asked (`[ble] passive`, the default): bleak then needs BlueZ's
  AdvertisementMonitor API (BlueZ >= 5.56 with --experimental, kernel >= 5.10), given or-patterns
  for BTHome, Eddystone and iBeacon. Where BlueZ lacks it the scanner falls back to active
  scanning, says so once in the log, and stays active.
- bleak's detection callback only queues the advert; a task drains the queue in batches, so
  adverts that arrive together become one `Gateway.accept` (one disk commit) and the D-Bus reader
  never waits for the disk.
- Parking sensors (BTHome v2 from a MAC the registry knows as a "parking-sensor"): one
  `bthome.Receiver` holds every sensor's key and drops repeats of a packet. Each new packet is one
  reading on `devices/{id}/telemetry`; its seq is the BTHome encryption counter for encrypted
  frames (it grows with every frame and survives gateway restarts; two gateways hearing the same
  sensor publish the same seq, so consumers de-duplicate across gateways), and for plaintext
  frames a per-device counter kept here, seeded from the wall clock in milliseconds when the
  device is first heard in this run so that it keeps growing across gateway restarts. A downgrade
  (plaintext from a device that has a key), a replay (an encryption counter that does not grow)
  or a frame that does not verify is counted as "rejected", logged naming the device, and not
  trusted: not published, the device not marked heard.
- Beacons (iBeacon, Eddystone UID/URL/TLM from a MAC known as a "beacon"): frames are merged
  into one health record published retained on `museum/beacons/{id}`, at most once per beacon
  every BEACON_EVERY_S.
- Adverts from MACs the registry does not know are counted ("unknown" and
  `registry.unknown_adverts`), never published.
- Watchdog: when nothing at all was heard for `[ble] watchdog_s` while the registry has BLE
  devices (a MAC), the scan is stopped and started again, `luciole_ble_scanner_restarts_total`
  counts it and the log says so. A scan that cannot start (adapter missing, BlueZ down) is logged
  once and retried with backoff; the rest of the gateway keeps running.

Outcomes counted in `luciole_ble_adverts_total{outcome}`: accepted, duplicate, rejected, unknown,
ignored (a known device's advert without anything Luciole reads), dropped (the queue overflowed).
"""

import asyncio
import collections
import json
import logging
import time

from bleak import BleakScanner
from bleak.args.bluez import OrPattern
from bleak.assigned_numbers import AdvertisementDataType

from luciole.protocols.ble import bthome, eddystone, ibeacon
from luciole.protocols.errors import DecodeError

from .config import BleConfig

log = logging.getLogger("luciole.ble")

LINK = "ble"
BTHOME_UUID = "0000fcd2-0000-1000-8000-00805f9b34fb"
EDDYSTONE_UUID = "0000feaa-0000-1000-8000-00805f9b34fb"
_IBEACON_PREFIX = b"\x02\x15"
_BATTERY = 0x01  # BTHome object id

# What passive scanning asks BlueZ to pass on: AD type, then the bytes at its start.
OR_PATTERNS = [
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),  # BTHome
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),  # Eddystone
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),  # iBeacon
]

QUEUE_MAX = 100_000  # adverts waiting to be decoded; past it they are dropped and counted
BATCH_MAX = 4_096
BEACON_EVERY_S = 5.0  # at most one beacon health publish per beacon this often
STATUS_EVERY_S = 30.0  # an RSSI change alone republishes a device's status at most this often
WARN_EVERY_S = 60.0  # rejected adverts: one warning per device this often, with a count
REFRESH_EVERY_S = 5.0  # re-read MACs and keys from the registry
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
RETRY_MIN_S = 1.0
RETRY_MAX_S = 30.0


class BleScanner:
    def __init__(self, config: BleConfig, gateway):
        self.config = config
        self.gateway = gateway  # registry, metrics, topics, uplink, reading(), accept(), _heard()
        self.receiver = bthome.Receiver()
        self.passive = config.passive
        self.last_heard = time.monotonic()  # of any advert at all, for the watchdog
        self._known = {}  # MAC -> Device, for every registry device with a MAC
        self._keys = {}  # MAC -> key given to the receiver
        self._refused = set()  # MACs whose key the receiver refused
        self._queue = collections.deque()
        self._wake = asyncio.Event()
        self._seq = {}  # device id -> last plaintext seq
        self._status_due = {}  # device id -> monotonic time an RSSI change may republish
        self._beacons = {}  # device id -> health record
        self._beacon_due = {}  # device id -> monotonic time of the next allowed publish
        self._beacon_dirty = set()
        self._warned = {}  # device id -> [monotonic time of the next warning, suppressed]
        self._tasks = set()
        outcomes = gateway.metrics.adverts
        self._accepted = outcomes.labels("accepted")
        self._duplicate = outcomes.labels("duplicate")
        self._rejected = outcomes.labels("rejected")
        self._unknown = outcomes.labels("unknown")
        self._ignored = outcomes.labels("ignored")
        self._dropped = outcomes.labels("dropped")
        self.refresh()

    # -- running --------------------------------------------------------------------------------

    async def run(self):
        async with asyncio.TaskGroup() as group:
            group.create_task(self._process())
            group.create_task(self._housekeeping())
            group.create_task(self._scan_forever())

    async def _scan_forever(self):
        adapter = self.config.adapter
        failures = 0
        while True:
            try:
                scanner = await self._start()
            except Exception as e:
                failures += 1
                delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** (failures - 1))
                if failures == 1:
                    log.warning(
                        "BLE: cannot scan on %s (%s); retrying, backing off up to %.0f s",
                        adapter,
                        _reason(e),
                        RETRY_MAX_S,
                    )
                else:
                    log.debug("BLE: %s still unavailable (%s)", adapter, _reason(e))
                await asyncio.sleep(delay)
                continue
            mode = "passive" if self.passive else "active"
            if failures:
                log.warning(
                    "BLE: scanning on %s (%s) again after %d failed attempts",
                    adapter,
                    mode,
                    failures,
                )
            else:
                log.info("BLE: scanning on %s (%s)", adapter, mode)
            failures = 0
            try:
                await self._watch()
            finally:
                await self._stop(scanner)

    async def _start(self) -> BleakScanner:
        if self.passive:
            try:
                return await self._start_mode("passive")
            except Exception as passive_error:
                # Active scanning works where passive does not: BlueZ lacks the monitor API.
                # If active fails too, the adapter or BlueZ is the problem: keep asking for passive.
                scanner = await self._start_mode("active")
                self.passive = False
                log.warning(
                    "BLE: passive scanning unavailable on %s (%s); scanning actively instead",
                    self.config.adapter,
                    _reason(passive_error),
                )
                return scanner
        return await self._start_mode("active")

    async def _start_mode(self, mode: str) -> BleakScanner:
        bluez = {"adapter": self.config.adapter}
        if mode == "passive":
            bluez["or_patterns"] = OR_PATTERNS
        scanner = BleakScanner(self._detected, scanning_mode=mode, bluez=bluez)
        try:
            await asyncio.wait_for(scanner.start(), START_TIMEOUT_S)
        except BaseException:
            await self._stop(scanner)  # a start cut short may have left half a registration
            raise
        return scanner

    async def _stop(self, scanner: BleakScanner):
        try:
            await asyncio.wait_for(scanner.stop(), STOP_TIMEOUT_S)
        except Exception as e:  # BlueZ restarted or gone: the scan died with it
            log.debug("BLE: stopping the scan on %s: %s", self.config.adapter, _reason(e))

    async def _watch(self):
        """Returns when the scan must be restarted: nothing heard for watchdog_s."""
        self.last_heard = time.monotonic()
        limit = self.config.watchdog_s
        tick = min(1.0, limit / 4)
        while True:
            await asyncio.sleep(tick)
            silent_s = time.monotonic() - self.last_heard
            if silent_s >= limit and self._known:
                self.gateway.metrics.scanner_restarts.inc()
                log.warning(
                    "BLE: nothing heard on %s for %.1f s while %d device(s) are expected; "
                    "restarting the scan",
                    self.config.adapter,
                    silent_s,
                    len(self._known),
                )
                return

    async def _housekeeping(self):
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - refreshed >= REFRESH_EVERY_S:
                self.refresh()
                refreshed = time.monotonic()
            self._flush_beacons()

    def refresh(self):
        """Takes MACs, kinds and keys from the registry (the config, or later provisioning)."""
        known = {}
        for device in self.gateway.registry.devices.values():
            if device.mac:
                known[device.mac.upper()] = device
        for mac, device in known.items():
            key = device.key if device.kind == "parking-sensor" else None
            if mac not in self._keys or self._keys[mac] != key:
                self._keys[mac] = key
                self._refused.discard(mac)
                try:
                    self.receiver.set_key(mac, key, device.bthome_counter)
                except DecodeError as e:  # without its key, plaintext must not get through
                    log.error("BLE: %s: unusable key (%s); its adverts are refused", device.id, e)
                    self._refused.add(mac)
        for mac in [mac for mac in self._keys if mac not in known]:
            self.receiver.set_key(mac, None)
            self._refused.discard(mac)
            del self._keys[mac]
        self._known = known

    # -- adverts --------------------------------------------------------------------------------

    def _detected(self, device, adv):
        """bleak's callback, on the D-Bus reader's turn: queue and return."""
        self.last_heard = time.monotonic()
        if len(self._queue) >= QUEUE_MAX:
            self._dropped.inc()
            return
        self._queue.append((device.address, adv.service_data, adv.manufacturer_data, adv.rssi))
        self._wake.set()

    async def _process(self):
        queue, handle = self._queue, self.handle
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                messages = []
                for _ in range(min(len(queue), BATCH_MAX)):
                    advert = queue.popleft()
                    try:
                        handle(*advert, messages)
                    except Exception:  # a bug must cost one advert, not the scanner
                        self._rejected.inc()
                        log.exception("BLE: advert from %s could not be handled", advert[0])
                self._flush_beacons()
                if messages:
                    try:
                        await self.gateway.accept(messages, LINK)
                    except Exception as e:
                        log.error("BLE: %d reading(s) could not be stored: %s", len(messages), e)
                else:
                    await asyncio.sleep(0)  # let the rest of the gateway run between batches

    def handle(self, mac, service_data, manufacturer_data, rssi, out: list) -> None:
        """One advert: readings for `out`, beacon health and registry updates. No I/O."""
        device = self._known.get(mac)
        if device is None:
            self._unknown.inc()
            self.gateway.registry.unknown_adverts += 1
            return
        kind = device.kind
        if kind == "parking-sensor":
            data = service_data.get(BTHOME_UUID)
            if data is None:
                self._ignored.inc()
                return
            try:
                if mac in self._refused:
                    raise DecodeError("the device's key in the registry is unusable")
                decoded = self.receiver.accept(mac, data)
            except DecodeError as e:
                self._reject(device, mac, e)
                return
            if decoded is None:
                self._duplicate.inc()
                self._heard(device, rssi, None)
                return
            self._accepted.inc()
            if decoded["counter"] is not None:  # saved with the registry: replays stay out
                device.bthome_counter = decoded["counter"]
            battery = None
            values = []
            for m in decoded["measurements"]:
                values.append((m["name"], m["value"], m["unit"]))
                if m["id"] == _BATTERY:
                    battery = m["value"]
            seq = decoded["counter"]
            if seq is None:
                seq = self._plaintext_seq(device.id)
            self._heard(device, rssi, battery)
            out.append(self.gateway.reading(device.id, seq, values, None, LINK))
            if self.gateway.parking is not None:  # the bay this sensor watches, if any
                self.gateway.parking.reading(device.id, decoded["measurements"])
        elif kind == "beacon":
            self._beacon(device, mac, service_data, manufacturer_data, rssi)
        else:
            self._ignored.inc()

    def _plaintext_seq(self, device_id):
        last = self._seq.get(device_id)
        seq = int(time.time() * 1000) if last is None else last + 1
        self._seq[device_id] = seq
        return seq

    def _heard(self, device, rssi, battery):
        now = time.monotonic()
        if (
            not device.online
            or (battery is not None and battery != device.battery)
            or now >= self._status_due.get(device.id, 0.0)
        ):
            self._status_due[device.id] = now + STATUS_EVERY_S
            self.gateway._heard(device, LINK, rssi=rssi, battery=battery)
        else:  # an RSSI wobble alone does not republish the status on every advert
            self.gateway._heard(device, LINK)

    def _reject(self, device, mac, error):
        self._rejected.inc()
        now = time.monotonic()
        warned = self._warned.get(device.id)
        if warned is not None and now < warned[0]:
            warned[1] += 1
            return
        more = f" ({warned[1]} more since the last warning)" if warned and warned[1] else ""
        self._warned[device.id] = [now + WARN_EVERY_S, 0]
        log.warning("BLE: %s (%s): advert rejected, not trusted: %s%s", device.id, mac, error, more)

    # -- beacons ---------------------------------------------------------------------------------

    def _beacon(self, device, mac, service_data, manufacturer_data, rssi):
        health = self._beacons.get(device.id)
        if health is None:
            health = self._beacons[device.id] = dict.fromkeys(
                ("last_seen", "battery_mv", "temperature", "adv_count", "uptime", "rssi")
            )
        understood = False
        try:
            frame = service_data.get(EDDYSTONE_UUID)
            if frame is not None:
                decoded = eddystone.decode(frame)
                kind = decoded["frame"]
                if kind == "tlm":
                    health["battery_mv"] = decoded["battery_mv"]
                    health["temperature"] = decoded["temperature_c"]
                    health["adv_count"] = decoded["adv_count"]
                    health["uptime"] = decoded["uptime_s"]
                elif kind == "uid":
                    health["namespace"] = decoded["namespace"]
                    health["instance"] = decoded["instance"]
                else:
                    health["url"] = decoded["url"]
                understood = True
            payload = manufacturer_data.get(ibeacon.COMPANY_ID)
            if payload is not None and payload[:2] == _IBEACON_PREFIX:
                decoded = ibeacon.decode(payload)
                health["uuid"] = decoded["uuid"]
                health["major"] = decoded["major"]
                health["minor"] = decoded["minor"]
                understood = True
        except DecodeError as e:
            self._reject(device, mac, e)
            return
        if not understood:
            self._ignored.inc()
            return
        self._accepted.inc()
        health["last_seen"] = round(time.time(), 3)
        health["rssi"] = rssi
        self._heard(device, rssi, None)
        self._beacon_dirty.add(device.id)

    def _flush_beacons(self):
        if not self._beacon_dirty:
            return
        now = time.monotonic()
        for device_id in [d for d in self._beacon_dirty if now >= self._beacon_due.get(d, 0.0)]:
            self._beacon_dirty.discard(device_id)
            self._beacon_due[device_id] = now + BEACON_EVERY_S
            topic = self.gateway.topics.build("beacon", device_id)
            payload = json.dumps(self._beacons[device_id], separators=(",", ":")).encode()
            task = asyncio.create_task(self.gateway.uplink.retain(topic, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
