"""Li-Fi content: the CMS manifest and objects checked at the gateway, the carousel it prepares,
and the visitor's receiver rebuilding the objects from whatever frames it catches."""

import contextlib
import hashlib
import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luciole.edge import lifi_carousel, lifi_content
from luciole.edge.museum_content import ContentError, ExhibitContent, Limits, parse_manifest
from luciole.protocols import lifi_mac, lifi_phy
from luciole.protocols.errors import DecodeError

RNG = random.Random(7)
SUMMARY = "# La Joconde\nLéonard de Vinci, vers 1503-1519. Huile sur bois.\n".encode()
PHOTO = RNG.randbytes(20_000)
AUDIO = RNG.randbytes(9_000)
DATA = {"summary": SUMMARY, "photo": PHOTO, "audio-fr": AUDIO}


def _doc(**changes):
    doc = {
        "version": 3,
        "title": "La Joconde",
        "objects": [
            _entry("summary", "text/markdown", SUMMARY, priority=0, title="Résumé"),
            _entry("photo", "image/webp", PHOTO),
            _entry("audio-fr", "audio/ogg", AUDIO, lang="fr"),
        ],
    }
    doc.update(changes)
    return doc


def _entry(object_id, kind, data, **extra):
    return dict(
        id=object_id, type=kind, size=len(data), sha256=hashlib.sha256(data).hexdigest(), **extra
    )


def _manifest(**changes):
    return json.dumps(_doc(**changes)).encode()


def _object_doc(n, **changes):
    doc = _doc()
    doc["objects"][n] = dict(doc["objects"][n], **changes)
    return json.dumps(doc).encode()


def test_a_good_manifest_parses():
    manifest = parse_manifest(_manifest())
    assert manifest.version == 3
    assert [o.id for o in manifest.objects] == ["summary", "photo", "audio-fr"]
    assert manifest.find("summary").priority == 0
    assert manifest.find("photo").priority == 1  # the default
    assert manifest.find("audio-fr").lang == "fr"


BAD_MANIFESTS = [
    (b"{not json", "manifest is not JSON"),
    (b"\xff\xfe", "manifest is not JSON"),
    (b"[]", "manifest must be a JSON object"),
    (_manifest(versoin=4), "manifest: unknown field 'versoin'"),
    (_manifest(version="3"), "manifest version '3' must be an integer"),
    (_manifest(version=-1), "manifest version -1 must be an integer"),
    (_manifest(version=True), "manifest version True"),
    (_manifest(objects=[]), "manifest objects must be a non-empty list"),
    (_manifest(objects={"photo": 1}), "manifest objects must be a non-empty list"),
    (_manifest(objects=[1]), "object 0 must be a JSON object"),
    (_manifest(title=5), "manifest title must be a string"),
    (_object_doc(1, id="Photo"), "object 1: id 'Photo' must match"),
    (_object_doc(1, id="../photo"), "object 1: id '../photo' must match"),
    (_object_doc(1, id="summary"), "object id summary is listed twice"),
    (_object_doc(1, type="image/gif"), "object photo: type 'image/gif' is not one of"),
    (_object_doc(1, size="20000"), "object photo: size '20000' must be a positive integer"),
    (_object_doc(1, size=0), "object photo: size 0 must be a positive integer"),
    (_object_doc(1, size=2_000_000), "object photo: size 2000000 is more than 1048576 bytes"),
    (_object_doc(1, sha256="AB" * 32), "object photo: sha256 'ABAB"),
    (_object_doc(1, sha256="ab" * 31), "must be 64 lowercase hex digits"),
    (_object_doc(1, priority=8), "object photo: priority 8 must be from 0 to 7"),
    (_object_doc(1, priority="high"), "object photo: priority 'high' must be an integer"),
    (_object_doc(1, colour="red"), "object photo: unknown field 'colour'"),
    (_object_doc(2, lang=""), "object audio-fr: lang '' must be a language tag"),
    (_object_doc(1, priority=0), "priority 0 objects add up to 20064 bytes, more than 4096"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_MANIFESTS, ids=[r for _, r in BAD_MANIFESTS])
def test_every_bad_manifest_is_rejected_with_its_reason(payload, reason):
    with pytest.raises(ContentError) as caught:
        parse_manifest(payload)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_limits_are_configuration():
    small = Limits(max_objects=2, max_total_bytes=25_000, max_manifest_bytes=4096)
    with pytest.raises(ContentError, match="lists 3 objects, more than 2"):
        parse_manifest(_manifest(), small)
    with pytest.raises(ContentError, match="objects add up to 29064 bytes, more than 25000"):
        parse_manifest(_manifest(), Limits(max_total_bytes=25_000))
    with pytest.raises(ContentError, match="manifest is 5000 bytes, more than 4096"):
        parse_manifest(b" " * 5000, small)


def _collector():
    content = ExhibitContent("joconde")
    content.set_manifest(_manifest())
    return content


def test_the_broadcast_is_prepared_once_every_object_matches():
    content = ExhibitContent("joconde")
    content.put_object("photo", PHOTO)  # objects may come before their manifest
    assert content.prepare(lifi_phy.MAX_PAYLOAD) is None
    assert content.status() == {
        "exhibit": "joconde",
        "state": "waiting",
        "reason": "no manifest yet",
    }
    content.set_manifest(_manifest())
    assert content.missing() == ["summary", "audio-fr"]
    content.put_object("summary", SUMMARY)
    with pytest.raises(ContentError, match=r"object audio-fr: SHA-256 [0-9a-f]{12}\.\.\. but"):
        content.put_object("audio-fr", AUDIO[::-1])
    with pytest.raises(
        ContentError, match="object audio-fr: 8999 bytes but the manifest says 9000"
    ):
        content.put_object("audio-fr", AUDIO[1:])
    assert content.status()["missing"] == ["audio-fr"]
    assert content.prepare(lifi_phy.MAX_PAYLOAD) is None
    content.put_object("audio-fr", AUDIO)
    broadcast = content.prepare(lifi_phy.MAX_PAYLOAD)
    assert broadcast.summary["version"] == 3
    assert broadcast.summary["state"] == "ready"
    assert broadcast.summary["frames"] == len(broadcast.frames)
    assert all(len(frame) <= lifi_phy.MAX_PAYLOAD for frame in broadcast.frames)
    assert content.prepare(lifi_phy.MAX_PAYLOAD) is None  # nothing new
    assert _receive(broadcast.frames, loss=0.0) == DATA


def test_an_object_removed_by_the_cms_is_missing_again():
    content = _collector()
    for object_id, data in DATA.items():
        content.put_object(object_id, data)
    content.put_object("photo", b"")  # an empty retained message clears the topic
    assert content.missing() == ["photo"]
    assert content.prepare(lifi_phy.MAX_PAYLOAD) is None


def test_changing_the_content_of_a_broadcast_version_is_refused():
    content = _collector()
    for object_id, data in DATA.items():
        content.put_object(object_id, data)
    assert content.prepare(lifi_phy.MAX_PAYLOAD)
    with pytest.raises(ContentError, match="version 3 is already broadcast with other content"):
        content.set_manifest(_object_doc(1, sha256="00" * 32))
    content.set_manifest(_manifest())  # the same content again (a retained redelivery) is fine


def test_unlisted_objects_are_bounded_and_ids_checked():
    content = ExhibitContent("joconde", Limits(max_objects=2))
    content.put_object("a", b"1")
    content.put_object("b", b"2")
    with pytest.raises(ContentError, match="object c: 2 objects already wait for a manifest"):
        content.put_object("c", b"3")
    with pytest.raises(ContentError, match="object id 'C' must match"):
        content.put_object("C", b"3")
    with pytest.raises(ContentError, match="exhibit 'Joconde' must match"):
        ExhibitContent("Joconde")


def _items(data=DATA):
    kinds = {
        "summary": ("text/markdown", 0),
        "photo": ("image/webp", 1),
        "audio-fr": ("audio/ogg", 1),
    }
    return [lifi_carousel.Item(k, *kinds[k], v) for k, v in data.items()]


def _receive(frames, loss, seed=0, start=None, assembler=None):
    """What a visitor joining at a random frame and losing frames at random gets before the loop
    comes back to where they joined: {id: bytes}."""
    rng = random.Random(seed)
    assembler = assembler or lifi_content.ContentAssembler()
    start = rng.randrange(len(frames)) if start is None else start
    got = {}
    for step in range(len(frames)):
        if rng.random() < loss:
            continue
        for event in assembler.feed(frames[(start + step) % len(frames)]):
            assert not isinstance(event, lifi_content.HashMismatch)
            if isinstance(event, lifi_content.ObjectComplete):
                got[event.entry.id] = event.data
        if assembler.complete():
            break
    return got


@pytest.mark.parametrize("loss", [0.0, 0.05, 0.2, 0.4])
def test_the_carousel_survives_random_erasures_byte_for_byte(loss):
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    for seed in range(10):
        assert _receive(carousel.frames, loss, seed) == DATA


def test_any_k_received_symbols_plus_two_rebuild_a_transfer():
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    directory = next(
        f for f in carousel.frames if lifi_mac.decode(f).__class__ is lifi_mac.Directory
    )
    symbols = [f for f in carousel.frames if f is not directory]
    bulk = [f for f in symbols if lifi_mac.decode(f).transfer == 1]
    assert len(set(bulk)) == len(bulk) >= 2 * carousel.source_symbols[1]  # distinct in one loop
    rng = random.Random(1)
    for _ in range(5):
        chosen = rng.sample(bulk, carousel.source_symbols[1] + 2)
        assembler = lifi_content.ContentAssembler()
        events = [e for f in [*chosen, directory] for e in assembler.feed(f)]
        done = {e.entry.id: e.data for e in events if isinstance(e, lifi_content.ObjectComplete)}
        assert done == {"photo": PHOTO, "audio-fr": AUDIO}


def _gaps(positions, loop):
    """Frames between successive positions, the wrap from the loop's end to its start included."""
    return [b - a for a, b in itertools.pairwise([*positions, positions[0] + loop])]


def test_the_first_glimpse_and_the_directory_are_spread_over_the_loop():
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    kinds = [lifi_mac.decode(f) for f in carousel.frames]
    glimpse = [n for n, f in enumerate(kinds) if isinstance(f, lifi_mac.Symbol) and f.transfer == 0]
    directories = [n for n, f in enumerate(kinds) if isinstance(f, lifi_mac.Directory)]
    assert max(_gaps(glimpse, len(kinds))) <= lifi_carousel.GLIMPSE_EVERY
    assert max(_gaps(directories, len(kinds))) <= lifi_carousel.DIRECTORY_EVERY


def test_a_plain_carousel_sends_each_source_symbol_once_per_loop():
    plain = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD, plain=True)
    symbols = [f for f in plain.frames if isinstance(lifi_mac.decode(f), lifi_mac.Symbol)]
    assert len(symbols) == sum(plain.source_symbols)
    assert _receive(plain.frames, 0.0) == DATA


def test_an_object_that_does_not_match_its_hash_is_never_presented():
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    good = carousel.directory
    lying = lifi_mac.Directory(
        good.exhibit,
        good.version,
        good.transfers,
        [
            lifi_mac.Entry(
                e.id,
                e.type,
                e.size,
                bytes(32) if e.id == "photo" else e.sha256,
                e.priority,
                e.transfer,
            )
            for e in good.objects
        ],
    )
    bad_directory = lifi_mac.encode_directory(lying)
    frames = [
        bad_directory if isinstance(lifi_mac.decode(f), lifi_mac.Directory) else f
        for f in carousel.frames
    ]
    assembler = lifi_content.ContentAssembler()
    presented, rejected = {}, []
    for frame in frames * 2:
        for event in assembler.feed(frame):
            if isinstance(event, lifi_content.ObjectComplete):
                presented[event.entry.id] = event.data
            elif isinstance(event, lifi_content.HashMismatch):
                rejected.append(event.entry.id)
                assert event.sha256 == hashlib.sha256(PHOTO).digest()
    assert presented == {"summary": SUMMARY, "audio-fr": AUDIO}
    assert rejected and set(rejected) == {"photo"}  # rejected, collected again, rejected again
    assert not assembler.complete()


def test_a_new_content_version_replaces_the_old_one():
    old = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    new_data = dict(DATA, photo=RNG.randbytes(15_000))
    new = lifi_carousel.build("joconde", 4, _items(new_data), lifi_phy.MAX_PAYLOAD)
    assembler = lifi_content.ContentAssembler()
    heard = [e for f in old.frames[:15] for e in assembler.feed(f)]  # part of version 3
    assert [
        (e.version, e.old_version) for e in heard if isinstance(e, lifi_content.ContentReplaced)
    ] == [(3, None)]
    assert "photo" not in assembler.presented()
    # the luminaire switches to version 4: its symbols wait for its directory, then replace all
    later = [e for f in new.frames[1:] + new.frames[:1] for e in assembler.feed(f)]
    replaced = [e for e in later if isinstance(e, lifi_content.ContentReplaced)]
    assert [(e.version, e.old_version) for e in replaced] == [(4, 3)]
    done = {e.entry.id: e.data for e in later if isinstance(e, lifi_content.ObjectComplete)}
    assert done == new_data
    assert not any(isinstance(e, lifi_content.HashMismatch) for e in later)
    # a version 3 symbol still in the air is never mixed into version 4
    assert assembler.feed(old.frames[20]) == []
    assert assembler.complete()


def test_symbols_heard_before_the_directory_are_used():
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    frames = [lifi_mac.decode(f) for f in carousel.frames]
    symbols = [
        f for f, d in zip(carousel.frames, frames, strict=True) if isinstance(d, lifi_mac.Symbol)
    ]
    directory = lifi_mac.encode_directory(carousel.directory)
    needed = sum(carousel.source_symbols) + 4
    assembler = lifi_content.ContentAssembler()
    for frame in symbols[:needed]:
        assert assembler.feed(frame) == []
    events = assembler.feed(directory)
    assert isinstance(events[0], lifi_content.ContentReplaced)
    assert assembler.complete()


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x12\x00\x00\x00\x03\x07\x00\x00\x00\x00" + bytes(984),  # transfer 7 of 2
        b"\x12\x00\x00\x00\x03\x01\x00\x00\x00\x00" + bytes(10),  # wrong symbol size
        b"\x12\x00\x00\x00\x03\x01\x01\x00\x00\x00" + bytes(984),  # source block 1 of 1
        b"\x99" + bytes(20),
    ],
)
def test_bad_frames_are_counted_and_change_nothing(frame):
    carousel = lifi_carousel.build("joconde", 3, _items(), lifi_phy.MAX_PAYLOAD)
    assembler = lifi_content.ContentAssembler()
    assembler.feed(lifi_mac.encode_directory(carousel.directory))
    assert assembler.feed(frame) == []
    assert assembler.rejected == 1
    assert _receive(carousel.frames, 0.0, assembler=assembler) == DATA


@given(st.sampled_from([b"", b"\x11", b"\x12"]), st.binary(max_size=300))
def test_the_mac_decoder_refuses_garbage_with_decode_error_only(head, rest):
    # anything else escaping (IndexError, struct.error, UnicodeError...) fails the test
    with contextlib.suppress(DecodeError):
        lifi_mac.decode(head + rest)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(0, 2**32 - 1), st.data())
def test_damaged_directories_never_escape_as_anything_but_decode_error(data, version, draw):
    items = [
        lifi_carousel.Item("a", "text/plain", 0, data),
        lifi_carousel.Item("b", "image/png", 1, data),
    ]
    frame = bytearray(lifi_carousel.build("x", version, items, 1000).frames[0])
    assert lifi_mac.decode(bytes(frame)).version == version
    at = draw.draw(st.integers(1, len(frame) - 1))  # byte 0 flipped may make a symbol frame
    frame[at] ^= draw.draw(st.integers(1, 255))
    assembler = lifi_content.ContentAssembler()
    assembler.feed(bytes(frame))  # refused and counted, or a directory that is still valid
    assert assembler.rejected + (assembler.directory is not None) == 1
