"""The crypto suite: signatures, payload encryption, envelopes and ids."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshd.crypto import suite
from meshd.crypto.suite import AssociatedData, Context, DeviceKeys
from meshd.errors import BadSignature, DecryptionFailed, InvalidInput

# RFC 8032 section 7.1: secret key (seed), public key, message, signature.
_TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)
RFC8032_VECTORS = {
    "TEST 1": (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    "TEST 2": (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    "TEST 3": (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    "TEST 1024": (
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
        "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    "TEST SHA(abc)": (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        hashlib.sha512(b"abc").hexdigest(),
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
}

AAD = AssociatedData(mesh_id=b"m" * 32, kind="op", author="AAAA-BBBB", sequence=7)
DEVICE_ID = re.compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){12}$")


def flip_bit(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


# -- Ed25519 through our wrapper ------------------------------------------------


@pytest.mark.parametrize("name", sorted(RFC8032_VECTORS))
def test_rfc8032_vectors_sign_and_verify_through_the_suite(name: str) -> None:
    seed, public, message, signature = (
        bytes.fromhex(part) for part in RFC8032_VECTORS[name]
    )

    assert DeviceKeys(seed, bytes(32)).public.signing == public
    assert suite.sign_raw(seed, message) == signature
    assert suite.verify_raw(public, message, signature)
    assert not suite.verify_raw(public, message + b"x", signature)
    assert not suite.verify_raw(public, message, flip_bit(signature, 0))


def test_rfc8032_message_lengths_are_as_published() -> None:
    lengths = {name: len(bytes.fromhex(v[2])) for name, v in RFC8032_VECTORS.items()}

    assert lengths == {
        "TEST 1": 0,
        "TEST 2": 1,
        "TEST 3": 2,
        "TEST 1024": 1023,
        "TEST SHA(abc)": 64,
    }


# -- Domain-separated signatures ---------------------------------------------------


def test_a_signature_verifies_only_in_the_context_it_was_made_in() -> None:
    keys = DeviceKeys.generate()
    payload = b"the same bytes in every context"

    for made_in, checked_in in itertools.product(Context, Context):
        signature = keys.sign(made_in, payload)
        if made_in is checked_in:
            suite.verify(checked_in, keys.public.signing, payload, signature)
        else:
            with pytest.raises(BadSignature):
                suite.verify(checked_in, keys.public.signing, payload, signature)


def test_contexts_are_distinct_and_none_is_a_prefix_of_another() -> None:
    values = [context.value for context in Context]

    assert len(set(values)) == len(values)
    assert all(b"\0" not in value for value in values)


@pytest.mark.parametrize("context", list(Context))
def test_a_signature_fails_with_another_key_or_a_changed_payload(
    context: Context,
) -> None:
    keys, other = DeviceKeys.generate(), DeviceKeys.generate()
    signature = keys.sign(context, b"payload")

    with pytest.raises(BadSignature):
        suite.verify(context, other.public.signing, b"payload", signature)
    with pytest.raises(BadSignature):
        suite.verify(context, keys.public.signing, b"payloaD", signature)
    with pytest.raises(BadSignature):
        suite.verify(context, keys.public.signing, b"payload", flip_bit(signature, 9))


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (b"k" * 31, b"s" * 64),
        (b"k" * 32, b"s" * 63),
        (b"", b""),
        (b"\xff" * 32, b"s" * 64),
    ],
)
def test_malformed_keys_and_signatures_raise_bad_signature(
    public_key: bytes, signature: bytes
) -> None:
    with pytest.raises(BadSignature):
        suite.verify(Context.OP, public_key, b"payload", signature)


def test_a_plain_ed25519_signature_of_the_payload_is_not_accepted() -> None:
    keys = DeviceKeys.generate()
    plain = suite.sign_raw(keys.signing_seed, b"payload")

    with pytest.raises(BadSignature):
        suite.verify(Context.OP, keys.public.signing, b"payload", plain)


# -- Payload encryption -------------------------------------------------------------


def test_a_payload_decrypts_with_its_key_and_context() -> None:
    key = suite.new_payload_key()

    assert suite.decrypt(key, suite.encrypt(key, b"passport", AAD), AAD) == b"passport"


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_flipped_bit_of_nonce_or_ciphertext_is_rejected(
    data: st.DataObject,
) -> None:
    key = suite.new_payload_key()
    sealed = suite.encrypt(key, b"secret passport data", AAD)
    # The first 24 bytes are the nonce; the rest is ciphertext and tag.
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))

    with pytest.raises(DecryptionFailed):
        suite.decrypt(key, flip_bit(sealed, bit), AAD)


def test_every_bit_of_the_nonce_is_authenticated() -> None:
    key = suite.new_payload_key()
    sealed = suite.encrypt(key, b"x", AAD)

    for bit in range(suite.NONCE_SIZE * 8):
        with pytest.raises(DecryptionFailed):
            suite.decrypt(key, flip_bit(sealed, bit), AAD)


@pytest.mark.parametrize(
    "moved",
    [
        replace(AAD, mesh_id=flip_bit(AAD.mesh_id, 3)),
        replace(AAD, mesh_id=AAD.mesh_id + b"\0"),
        replace(AAD, kind="snapshot"),
        replace(AAD, kind="oq"),
        replace(AAD, author="AAAA-BBBC"),
        replace(AAD, sequence=6),
        replace(AAD, sequence=7 + (1 << 32)),
        # Framing: moving bytes between fields must not keep the same data.
        AssociatedData(AAD.mesh_id + b"op", "", AAD.author, AAD.sequence),
        AssociatedData(AAD.mesh_id, "opAAAA-BBBB", "", AAD.sequence),
    ],
)
def test_a_ciphertext_moved_to_another_context_is_rejected(
    moved: AssociatedData,
) -> None:
    key = suite.new_payload_key()
    sealed = suite.encrypt(key, b"passport", AAD)

    with pytest.raises(DecryptionFailed):
        suite.decrypt(key, sealed, moved)


def test_any_flipped_bit_of_the_associated_data_is_rejected() -> None:
    key = suite.new_payload_key()
    sealed = suite.encrypt(key, b"passport", AAD)
    author = AAD.author.encode()

    for bit in range(len(AAD.mesh_id) * 8):
        with pytest.raises(DecryptionFailed):
            suite.decrypt(key, sealed, replace(AAD, mesh_id=flip_bit(AAD.mesh_id, bit)))
    for bit in range(len(AAD.kind) * 8):
        changed = flip_bit(AAD.kind.encode(), bit).decode("latin-1")
        with pytest.raises(DecryptionFailed):
            suite.decrypt(key, sealed, replace(AAD, kind=changed))
    for bit in range(len(author) * 8):
        changed = flip_bit(author, bit).decode("latin-1")
        with pytest.raises(DecryptionFailed):
            suite.decrypt(key, sealed, replace(AAD, author=changed))
    for bit in range(64):
        with pytest.raises(DecryptionFailed):
            suite.decrypt(key, sealed, replace(AAD, sequence=AAD.sequence ^ (1 << bit)))


def test_padding_hides_the_length_within_a_bucket() -> None:
    key = suite.new_payload_key()

    def size(length: int) -> int:
        return len(suite.encrypt(key, bytes(length), AAD))

    assert size(0) == size(1) == size(200) == size(252)
    assert size(253) == size(500) == size(508)
    assert size(1) < size(253) < size(600)
    assert size(2_000_000) == size(2_097_148)


@pytest.mark.parametrize("length", [0, 1, 251, 252, 253, 4000, (1 << 20) - 4, 1 << 20])
def test_plaintexts_at_bucket_edges_round_trip(length: int) -> None:
    key = suite.new_payload_key()
    plaintext = bytes(range(256)) * (length // 256) + bytes(length % 256)

    assert suite.decrypt(key, suite.encrypt(key, plaintext, AAD), AAD) == plaintext
    assert suite.bucket_size(length) >= length + 4


def _failures() -> dict[str, object]:
    """Every way decryption can fail, each producing the raised error."""
    key = suite.new_payload_key()
    sealed = suite.encrypt(key, b"passport", AAD)
    alice, bob, eve = (DeviceKeys.generate() for _ in range(3))
    envelope = suite.encrypt_for(
        {"alice": alice.public.encryption, "bob": bob.public.encryption},
        b"passport",
        AAD,
    )
    tampered_key = flip_bit(envelope.wrapped_keys["alice"], 100)
    attempts: dict[str, Callable[[], object]] = {
        "flipped bit": lambda: suite.decrypt(key, flip_bit(sealed, 300), AAD),
        "wrong key": lambda: suite.decrypt(suite.new_payload_key(), sealed, AAD),
        "truncated": lambda: suite.decrypt(key, sealed[:-1], AAD),
        "shorter than a nonce": lambda: suite.decrypt(key, sealed[:10], AAD),
        "empty": lambda: suite.decrypt(key, b"", AAD),
        "wrong context": lambda: suite.decrypt(key, sealed, replace(AAD, sequence=8)),
        "not a recipient": lambda: suite.decrypt_envelope(
            "eve", eve.encryption_secret, envelope, AAD
        ),
        "wrong recipient secret": lambda: suite.decrypt_envelope(
            "alice", bob.encryption_secret, envelope, AAD
        ),
        "tampered wrapped key": lambda: suite.decrypt_envelope(
            "alice",
            alice.encryption_secret,
            replace(envelope, wrapped_keys={"alice": tampered_key}),
            AAD,
        ),
        "unwrap garbage": lambda: alice.unwrap_key(b"garbage"),
    }
    errors: dict[str, object] = {}
    for name, attempt in attempts.items():
        with pytest.raises(DecryptionFailed) as caught:
            attempt()
        errors[name] = caught.value
    return errors


def test_every_decryption_failure_looks_the_same() -> None:
    errors = _failures()

    seen = {
        (type(e), str(e), repr(e.to_data()))  # type: ignore[attr-defined]
        for e in errors.values()
    }
    assert len(seen) == 1, errors


def test_bad_padding_fails_like_any_other_decryption_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a key holder can produce bad padding; it must still look the same.
    honest = suite.pad
    key = suite.new_payload_key()
    reference = _failures()["wrong key"]
    cases = {
        "nonzero tail": lambda p: honest(p)[:-1] + b"\x01",
        "length past the end": lambda p: b"\xff\xff\xff\xff" + honest(p)[4:],
        "too short for a header": lambda p: b"\0\0",
    }
    for name, bad_pad in cases.items():
        monkeypatch.setattr(suite, "pad", bad_pad)
        sealed = suite.encrypt(key, b"passport", AAD)
        with pytest.raises(DecryptionFailed) as caught:
            suite.decrypt(key, sealed, AAD)
        assert str(caught.value) == str(reference), name
        expected = reference.to_data()  # type: ignore[attr-defined]
        assert caught.value.to_data() == expected


# -- Envelopes -------------------------------------------------------------------------


def test_every_recipient_opens_an_envelope_and_an_outsider_cannot() -> None:
    devices = {f"device-{n}": DeviceKeys.generate() for n in range(4)}
    outsider = DeviceKeys.generate()
    envelope = suite.encrypt_for(
        {name: keys.public.encryption for name, keys in devices.items()},
        b"the passport",
        AAD,
    )

    for name, keys in devices.items():
        opened = suite.decrypt_envelope(name, keys.encryption_secret, envelope, AAD)
        assert opened == b"the passport"
    for name in [*devices, "outsider"]:
        with pytest.raises(DecryptionFailed):
            suite.decrypt_envelope(name, outsider.encryption_secret, envelope, AAD)


def test_an_envelope_moved_to_another_context_does_not_open() -> None:
    keys = DeviceKeys.generate()
    envelope = suite.encrypt_for({"me": keys.public.encryption}, b"x", AAD)

    with pytest.raises(DecryptionFailed):
        suite.decrypt_envelope(
            "me", keys.encryption_secret, envelope, replace(AAD, kind="snapshot")
        )


def test_a_wrapped_key_opens_only_with_its_device_key() -> None:
    keys, other = DeviceKeys.generate(), DeviceKeys.generate()
    payload_key = suite.new_payload_key()
    wrapped = suite.seal(keys.public.encryption, payload_key)

    assert keys.unwrap_key(wrapped) == payload_key
    with pytest.raises(DecryptionFailed):
        other.unwrap_key(wrapped)


def test_sealing_to_a_malformed_public_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        suite.seal(b"short", b"key")


# -- Keys and ids ---------------------------------------------------------------


def test_device_keys_round_trip_through_their_secrets() -> None:
    keys = DeviceKeys.generate()
    again = DeviceKeys(keys.signing_seed, keys.encryption_secret)

    assert again.public == keys.public
    assert keys.public.signing != keys.public.encryption
    assert keys.device_id not in repr(keys)


@pytest.mark.parametrize(("seed", "secret"), [(b"s" * 31, b"e" * 32), (b"s" * 32, b"")])
def test_device_keys_of_the_wrong_size_are_invalid_input(
    seed: bytes, secret: bytes
) -> None:
    with pytest.raises(InvalidInput):
        DeviceKeys(seed, secret)


def test_a_device_id_is_thirteen_groups_of_four_base32_characters() -> None:
    keys = DeviceKeys.generate()

    assert DEVICE_ID.match(keys.device_id)
    assert keys.device_id == suite.device_id_from_key(keys.public.signing)
    assert keys.device_id != DeviceKeys.generate().device_id
    assert suite.short_id(keys.device_id) == keys.device_id[:9]


def test_device_id_follows_the_blake2b_of_the_signing_key() -> None:
    public = bytes.fromhex(RFC8032_VECTORS["TEST 1"][1])
    digest = hashlib.blake2b(public, digest_size=32).digest()

    import base64

    expected = base64.b32encode(digest).decode().rstrip("=")
    assert suite.device_id_from_key(public).replace("-", "") == expected


@settings(max_examples=30, deadline=None)
@given(
    st.binary(min_size=32, max_size=32), st.sampled_from(["lower", "compact", "spaced"])
)
def test_a_device_id_typed_loosely_normalizes_to_itself(
    public: bytes, style: str
) -> None:
    device_id = suite.device_id_from_key(public)
    typed = {
        "lower": device_id.lower(),
        "compact": device_id.replace("-", ""),
        "spaced": device_id.replace("-", " ").lower(),
    }[style]

    assert suite.normalize_device_id(typed) == device_id


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "not a device id",
        "AAAA-BBBB",
        "A" * 51,
        "A" * 53,
        "A" * 51 + "1",  # 1 is not base32
        "A" * 51 + "B",  # the last character carries one bit: only A or Q
        "\u0131" * 52,  # a dotless i upper-cases to ASCII I: not what was shown
        "A" * 51 + "\n",
    ],
)
def test_junk_is_not_a_device_id(junk: str) -> None:
    with pytest.raises(InvalidInput):
        suite.normalize_device_id(junk)


def test_a_mesh_did_is_self_certifying_from_the_genesis_hash() -> None:
    genesis = suite.blake2b(b"genesis entry")

    did = suite.did_from_genesis(genesis)

    assert re.fullmatch(r"did:human:[a-z2-7]{52}", did)
    assert did == suite.did_from_genesis(genesis)
    assert did != suite.did_from_genesis(suite.blake2b(b"another genesis"))


def test_blake2b_purposes_do_not_collide() -> None:
    assert suite.blake2b(b"x", person=b"one") != suite.blake2b(b"x", person=b"two")
    assert len(suite.blake2b(b"x")) == suite.HASH_SIZE


def test_encrypting_with_a_malformed_payload_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        suite.encrypt(b"short", b"passport", AAD)


@pytest.mark.parametrize("sequence", [-1, 1 << 64])
def test_encrypting_with_a_sequence_outside_64_bits_is_invalid_input(
    sequence: int,
) -> None:
    with pytest.raises(InvalidInput):
        suite.encrypt(suite.new_payload_key(), b"x", replace(AAD, sequence=sequence))
