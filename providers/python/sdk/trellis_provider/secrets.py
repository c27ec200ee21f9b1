"""Opening config values a host sealed to this provider's xkey (curve25519 box, as nkeys seals)."""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.public import Box, PrivateKey, PublicKey

#: What nkeys puts before the nonce of every sealed box.
_VERSION = b"xkv1"
_NONCE = 24


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _decode(text: str, prefix_len: int, what: str) -> bytes:
    """The 32 raw key bytes of an nkeys-encoded key (base32, prefix, CRC16)."""
    # 32 key bytes, the prefix and 2 of CRC, in unpadded base32.
    if len(text) != ((prefix_len + 34) * 8 + 4) // 5:
        raise ValueError(f"{what} is not an nkeys key (its length)")
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not an nkeys key") from None
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "little")
    if _crc16(body) != crc or len(body) != prefix_len + 32:
        raise ValueError(f"{what} is not an nkeys key (checksum or length)")
    return body[prefix_len:]


def read_seed(path: str) -> str:
    """The xkey seed in ``path`` (an `SX…` line)."""
    with open(path, encoding="utf-8") as f:
        seed = f.read().strip()
    if not seed.startswith("SX"):
        raise ValueError(f"{path} does not hold an xkey seed (SX…)")
    _decode(seed, 2, path)
    return seed


def public_key(seed: str) -> str:
    """The `X…` public key of an xkey seed: what hosts seal to."""
    public = bytes(PrivateKey(_decode(seed, 2, "the xkey seed")).public_key)
    body = bytes([23 << 3]) + public  # nkeys' prefix byte for curve keys ('X').
    raw = body + _crc16(body).to_bytes(2, "little")
    return base64.b32encode(raw).decode().rstrip("=")


def open_sealed(key: str, sealed: dict, seed: str) -> str:
    """The value of secret config `key`, sealed as ``{"sender": X…, "sealed": base64}``."""
    if not isinstance(sealed, dict):
        raise ValueError(f"secret config `{key}` is not a sealed value")
    sender = _decode(str(sealed.get("sender", "")), 1, f"secret config `{key}`: the sender")
    try:
        data = base64.b64decode(str(sealed.get("sealed", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"secret config `{key}` is not base64") from None
    if not data.startswith(_VERSION) or len(data) < len(_VERSION) + _NONCE:
        raise ValueError(f"secret config `{key}` is not an xkv1 box")
    nonce = data[len(_VERSION):len(_VERSION) + _NONCE]
    box = Box(PrivateKey(_decode(seed, 2, "the xkey seed")), PublicKey(sender))
    try:
        value = box.decrypt(data[len(_VERSION) + _NONCE:], nonce)
    except (CryptoError, RuntimeError):
        raise ValueError(f"secret config `{key}` does not open with this provider's xkey") from None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"secret config `{key}` is not UTF-8") from None
