"""An exhibit's content as the museum CMS publishes it, checked and prepared for the Li-Fi carousel.

The CMS publishes, retained (format in docs/lifi-content.md):
  museum/exhibits/{exhibit}/content            the manifest, JSON
  museum/exhibits/{exhibit}/objects/{object}   each object's bytes (an empty payload removes it)
ExhibitContent collects both, in any order, and once every object listed is there with the size
and SHA-256 the manifest gives, prepare() returns the Broadcast: the luminaire's frames and the
summary for museum/exhibits/{exhibit}/broadcast. Bad input raises ContentError, whose message is
the one-line reason.
"""

import hashlib
import json
from dataclasses import dataclass

from luciole.protocols.topics import is_valid_id

TYPES = frozenset(
    {
        "text/plain",
        "text/markdown",
        "text/html",
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/avif",
        "image/svg+xml",
        "audio/mpeg",
        "audio/ogg",
        "audio/opus",
        "audio/aac",
        "audio/mp4",
        "video/mp4",
        "video/webm",
    }
)
MAX_PRIORITY = 7  # 0 = first glimpse (title, summary, thumbnail), then 1, 2, ... in order
MAX_TITLE_CHARS = 200
MANIFEST_FIELDS = {"version", "title", "objects"}
OBJECT_FIELDS = {"id", "type", "size", "sha256", "priority", "title", "lang"}


@dataclass(frozen=True)
class Limits:
    """What one exhibit may hold. The luminaire stores about COVERAGE (2) times the content."""

    max_objects: int = 8  # the directory lists them all in one frame
    max_object_bytes: int = 1024 * 1024
    max_total_bytes: int = 1024 * 1024
    max_glimpse_bytes: int = 4 * 1024  # priority 0: must arrive within a second of joining
    max_manifest_bytes: int = 16 * 1024


class ContentError(ValueError):
    """Content the CMS published that cannot be broadcast; str() is the one-line reason."""


@dataclass(frozen=True)
class ObjectInfo:
    id: str
    type: str
    size: int
    sha256: str  # 64 lowercase hex digits
    priority: int = 1
    title: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class Manifest:
    version: int
    objects: tuple
    title: str | None = None

    def find(self, object_id):
        return next((o for o in self.objects if o.id == object_id), None)


@dataclass(frozen=True)
class Broadcast:
    manifest: Manifest
    frames: list  # MAC frame payloads, looped by the luminaire in this order
    summary: dict  # for museum/exhibits/{exhibit}/broadcast (the gateway adds luminaires, rate)


def parse_manifest(payload, limits=Limits()):
    """The Manifest in payload (JSON bytes or str); ContentError naming the first problem."""
    if len(payload) > limits.max_manifest_bytes:
        raise ContentError(
            f"manifest is {len(payload)} bytes, more than {limits.max_manifest_bytes}"
        )
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ContentError(f"manifest is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ContentError("manifest must be a JSON object")
    _known_fields(doc, MANIFEST_FIELDS, "manifest")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**32:
        raise ContentError(f"manifest version {version!r} must be an integer from 0 to 2**32-1")
    objects = doc.get("objects")
    if not isinstance(objects, list) or not objects:
        raise ContentError("manifest objects must be a non-empty list")
    if len(objects) > limits.max_objects:
        raise ContentError(f"manifest lists {len(objects)} objects, more than {limits.max_objects}")
    parsed = tuple(_object(n, o, limits) for n, o in enumerate(objects))
    ids = [o.id for o in parsed]
    for object_id in ids:
        if ids.count(object_id) > 1:
            raise ContentError(f"object id {object_id} is listed twice")
    total = sum(o.size for o in parsed)
    if total > limits.max_total_bytes:
        raise ContentError(f"objects add up to {total} bytes, more than {limits.max_total_bytes}")
    glimpse = sum(o.size for o in parsed if o.priority == 0)
    if glimpse > limits.max_glimpse_bytes:
        raise ContentError(
            f"priority 0 objects add up to {glimpse} bytes, more than {limits.max_glimpse_bytes}"
        )
    return Manifest(version, parsed, _title(doc.get("title"), "manifest title"))


def _known_fields(doc, allowed, where):
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ContentError(f"{where}: unknown field {unknown[0]!r}")


def _title(value, where):
    if value is not None and (not isinstance(value, str) or len(value) > MAX_TITLE_CHARS):
        raise ContentError(f"{where} must be a string of at most {MAX_TITLE_CHARS} characters")
    return value


def _object(n, doc, limits):
    where = f"object {n}"
    if not isinstance(doc, dict):
        raise ContentError(f"{where} must be a JSON object")
    object_id = doc.get("id")
    if not is_valid_id(object_id):
        raise ContentError(f"{where}: id {object_id!r} must match [a-z0-9][a-z0-9-]{{0,63}}")
    where = f"object {object_id}"
    _known_fields(doc, OBJECT_FIELDS, where)
    kind = doc.get("type")
    if kind not in TYPES:
        raise ContentError(f"{where}: type {kind!r} is not one of {', '.join(sorted(TYPES))}")
    size = doc.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ContentError(f"{where}: size {size!r} must be a positive integer")
    if size > limits.max_object_bytes:
        raise ContentError(f"{where}: size {size} is more than {limits.max_object_bytes} bytes")
    digest = doc.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise ContentError(f"{where}: sha256 {digest!r} must be 64 lowercase hex digits")
    priority = doc.get("priority", 1)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ContentError(f"{where}: priority {priority!r} must be an integer")
    if not 0 <= priority <= MAX_PRIORITY:
        raise ContentError(f"{where}: priority {priority} must be from 0 to {MAX_PRIORITY}")
    lang = doc.get("lang")
    if lang is not None and not (isinstance(lang, str) and 0 < len(lang) <= 35):
        raise ContentError(f"{where}: lang {lang!r} must be a language tag such as 'fr'")
    return ObjectInfo(
        object_id, kind, size, digest, priority, _title(doc.get("title"), f"{where} title"), lang
    )


class ExhibitContent:
    """Collects one exhibit's manifest and objects and prepares its broadcast when complete."""

    def __init__(self, exhibit, limits=Limits()):
        if not is_valid_id(exhibit):
            raise ContentError(f"exhibit {exhibit!r} must match [a-z0-9][a-z0-9-]{{0,63}}")
        self.exhibit = exhibit
        self.limits = limits
        self.manifest = None
        self.objects = {}  # id -> bytes, as published
        self.broadcast = None  # the Broadcast prepared last

    def withdraw(self):
        """The CMS deleted the manifest: nothing is to be broadcast (objects stay, for a next
        manifest that lists them)."""
        self.manifest = self.broadcast = None

    def set_manifest(self, payload):
        """Takes a new manifest. ContentError if it is bad, or if it changes the content of the
        version being broadcast (receivers would mix the two: publish a new version)."""
        manifest = parse_manifest(payload, self.limits)
        current = self.broadcast
        if (
            current
            and manifest.version == current.manifest.version
            and manifest != current.manifest
        ):
            raise ContentError(
                f"version {manifest.version} is already broadcast with other content; "
                "publish the change as a new version"
            )
        self.manifest = manifest
        listed = {o.id for o in manifest.objects}
        self.objects = {k: v for k, v in self.objects.items() if k in listed}

    def put_object(self, object_id, payload):
        """Takes an object's bytes (empty: removes it). Kept even when the manifest does not list
        it or gives another size or SHA-256 (the next manifest may describe it), but ContentError
        then says what does not match."""
        if not is_valid_id(object_id):
            raise ContentError(f"object id {object_id!r} must match [a-z0-9][a-z0-9-]{{0,63}}")
        if not payload:
            self.objects.pop(object_id, None)
            return
        if len(payload) > self.limits.max_object_bytes:
            raise ContentError(
                f"object {object_id} is {len(payload)} bytes, more than "
                f"{self.limits.max_object_bytes}"
            )
        listed = self.manifest.find(object_id) if self.manifest else None
        # objects may come before the manifest that lists them, but not without bound
        waiting = [k for k in self.objects if not (self.manifest and self.manifest.find(k))]
        if listed is None and object_id not in waiting and len(waiting) >= self.limits.max_objects:
            raise ContentError(
                f"object {object_id}: {len(waiting)} objects already wait for a manifest"
            )
        self.objects[object_id] = bytes(payload)
        if listed is not None:
            problem = _mismatch(listed, payload)
            if problem:
                raise ContentError(f"object {object_id}: {problem}")

    def missing(self):
        """Ids of the manifest's objects not (yet) here with the right size and SHA-256."""
        if self.manifest is None:
            return []
        return [
            o.id
            for o in self.manifest.objects
            if o.id not in self.objects or _mismatch(o, self.objects[o.id])
        ]

    def status(self):
        """The summary while nothing new is ready: waiting for the manifest or for objects."""
        if self.manifest is None:
            return {"exhibit": self.exhibit, "state": "waiting", "reason": "no manifest yet"}
        return {
            "exhibit": self.exhibit,
            "version": self.manifest.version,
            "state": "waiting",
            "missing": self.missing(),
        }

    def prepare(self, max_payload):
        """The Broadcast of the current manifest once complete and not prepared yet; else None.
        max_payload: the PHY's largest frame payload (lifi_phy.MAX_PAYLOAD)."""
        manifest = self.manifest
        if manifest is None or self.missing():
            return None
        if self.broadcast is not None and self.broadcast.manifest.version == manifest.version:
            return None
        # imported here: the gateway runs without the lifi extra until it has Li-Fi to prepare
        from luciole.edge import lifi_carousel

        items = [
            lifi_carousel.Item(o.id, o.type, o.priority, self.objects[o.id])
            for o in manifest.objects
        ]
        try:
            carousel = lifi_carousel.build(self.exhibit, manifest.version, items, max_payload)
        except ValueError as e:
            raise ContentError(str(e)) from None
        summary = {
            "exhibit": self.exhibit,
            "version": manifest.version,
            "state": "ready",
            "title": manifest.title,
            "objects": [
                {
                    "id": o.id,
                    "type": o.type,
                    "size": o.size,
                    "priority": o.priority,
                    "title": o.title,
                }
                for o in manifest.objects
            ],
            "total_bytes": sum(o.size for o in manifest.objects),
            "frames": len(carousel.frames),
            "carousel_bytes": sum(len(f) for f in carousel.frames),
        }
        self.broadcast = Broadcast(manifest, carousel.frames, summary)
        return self.broadcast


def _mismatch(info, payload):
    if len(payload) != info.size:
        return f"{len(payload)} bytes but the manifest says {info.size}"
    digest = hashlib.sha256(payload).hexdigest()
    if digest != info.sha256:
        return f"SHA-256 {digest[:12]}... but the manifest says {info.sha256[:12]}..."
    return None
