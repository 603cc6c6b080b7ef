"""Near-duplicate fingerprints: MinHash over character shingles, cut into LSH bands.

A repost with a comment added, a copy with the punctuation changed or a
traditional-Chinese copy of a simplified post has a different exact content
hash but nearly the same character 3-grams. This module turns a text into

* a MinHash signature (``datasketch``'s ``affine32`` scheme, 64 permutations,
  computed vectorised: see :func:`signature_of`) of the 3-grams of its
  normalised form, and
* 16 LSH band keys (4 signature rows each, hashed to a signed 64-bit int), so
  that two texts whose 3-gram Jaccard similarity is J share at least one key
  with probability 1 − (1 − J⁴)¹⁶: 0.998 at J = 0.75, 0.64 at J = 0.5,
  0.12 at J = 0.3; at least 3 shared keys (the candidate filter of
  :class:`storage.dedup_index.DedupIndex`) with probability 0.90 at J = 0.75,
  0.97 at 0.8, 0.08 at 0.5. :func:`copy_similarity` on the texts decides (the
  share of the original's 3-grams the new text repeats, and no number of the
  original changed).

Normalised form: :func:`nlp.normalize.simplify_and_fold` (half-width,
simplified), lower case, without any character that is not a letter or digit.
Only the first :data:`MAX_CHARS` characters are shingled: a long article
copied in full has the same exact hash anyway, and the cost stays bounded
(≈ 40 µs for a 50-character post, normalising included).

Fingerprints are deterministic across processes and machines (no Python
``hash``), so they can be stored and compared by later crawls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash

from nlp.normalize import simplify_and_fold

NUM_PERM = 64
BANDS = 16
ROWS = NUM_PERM // BANDS
SHINGLE = 3
MAX_CHARS = 1500
SCHEME = "affine32"
SIGNATURE_BYTES = NUM_PERM * 4

_NON_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class Fingerprint:
    """A text's MinHash ``signature`` (``NUM_PERM`` uint32 as bytes), LSH ``bands`` and
    the ``norm``-alised text they were computed from."""

    signature: bytes
    bands: tuple[int, ...]
    norm: str


@lru_cache(maxsize=1)
def permutations() -> np.ndarray:
    """datasketch's ``affine32`` permutation parameters ``[a, b]`` for seed 1 (drawn once)."""
    perms = MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME).permutations
    return np.asarray(perms, dtype=np.uint32)


# Odd 64-bit multipliers that spread the three code points of a 3-gram.
_K = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def gram_hashes(norm: str) -> np.ndarray:
    """32-bit hashes of the character 3-grams of ``norm`` (one per position, vectorised).

    Equal grams hash equally, in any process. :func:`gram_hash` is the same
    function for one gram (what ``datasketch.MinHash(hashfunc=...)`` would call).
    """
    cps = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(cps) < SHINGLE:
        cps = np.concatenate([cps, np.zeros(SHINGLE - len(cps), dtype=np.uint64)])
    n = len(cps) - SHINGLE + 1
    # Array arithmetic on unsigned ints wraps silently (no errstate needed, ≈ 2 µs each).
    h = cps[:n] * _K[0] ^ cps[1 : n + 1] * _K[1] ^ cps[2 : n + 2] * _K[2]
    h ^= h >> np.uint64(29)
    return (h & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def gram_hash(gram: bytes) -> int:
    """The hash of one UTF-8 encoded 3-gram, as :func:`gram_hashes` computes it."""
    return int(gram_hashes(gram.decode("utf-8"))[0])


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's finalizer, as datasketch's affine32 scheme pre-mixes input hashes.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signature_of(norm: str) -> np.ndarray:
    """The MinHash signature (``NUM_PERM`` uint32) of the 3-grams of ``norm``.

    Exactly ``datasketch.MinHash(num_perm=64, seed=1, scheme="affine32",
    hashfunc=gram_hash)`` updated with the 3-grams (a unit test checks this),
    computed in one numpy pass: datasketch hashes each gram with a Python call,
    which made a 50-character post cost ≈ 300 µs instead of ≈ 25 µs.
    """
    a, b = permutations()
    mixed = _fmix32(gram_hashes(norm))
    return (mixed[:, None] * a + b).min(axis=0)


def normalised(text: str) -> str:
    """The form of ``text`` that is shingled (letters and digits only, see the module doc)."""
    # simplify_and_fold, not the full normalize_for_analysis: removing URLs and
    # @mentions too costs ≈ 10 µs a post, and what a copy adds (a mention, a
    # link) does not lower how much of the original it repeats.
    return _NON_WORD.sub("", simplify_and_fold(text).lower())[:MAX_CHARS]


def shingles(text: str) -> set[str]:
    """Character 3-grams of the normalised text (the text itself if shorter than 3)."""
    return _grams(normalised(text))


def _grams(norm: str) -> set[str]:
    if len(norm) <= SHINGLE:
        return {norm} if norm else set()
    return {norm[i : i + SHINGLE] for i in range(len(norm) - SHINGLE + 1)}


def fingerprint(text: str) -> Fingerprint | None:
    """The MinHash signature and band keys of ``text``; ``None`` if nothing is left to compare.

    Texts shorter than :data:`SHINGLE` normalised characters also give ``None``:
    "顶" or "+1" under two URLs are not reposts of each other in any useful sense.
    """
    norm = normalised(text)
    if len(norm) < SHINGLE:
        return None
    sig = signature_of(norm)
    return Fingerprint(signature=sig.tobytes(), bands=band_keys(sig), norm=norm)


# Per-row multipliers and per-band offsets of the band keys (fixed: keys are stored).
_ROW_K = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93],
    dtype=np.uint64,
)
_BAND_K = np.arange(1, BANDS + 1, dtype=np.uint64) * np.uint64(0xA24BAED4963EE407)
_MIX = np.uint64(0x94D049BB133111EB)


def band_keys(signature: np.ndarray) -> tuple[int, ...]:
    """The :data:`BANDS` LSH keys of a signature: each band's :data:`ROWS` values mixed
    into one signed 64-bit int (SQLite's INTEGER); the band number is part of the key,
    so equal rows in different bands never match."""
    rows = signature.astype(np.uint64).reshape(BANDS, ROWS)
    h = (rows * _ROW_K).sum(axis=1, dtype=np.uint64) ^ _BAND_K
    h ^= h >> np.uint64(31)
    h *= _MIX
    h ^= h >> np.uint64(29)
    return tuple(h.view(np.int64).tolist())


def estimate(a: bytes, b: bytes) -> float:
    """Jaccard similarity estimated from two signatures (share of equal MinHash rows)."""
    if len(a) != SIGNATURE_BYTES or len(b) != SIGNATURE_BYTES:
        raise ValueError("signatures of different sizes cannot be compared")
    va = np.frombuffer(a, dtype=np.uint32)
    vb = np.frombuffer(b, dtype=np.uint32)
    return float(np.count_nonzero(va == vb)) / NUM_PERM


_DIGITS = re.compile(r"\d+")


def copy_similarity(copy_norm: str, original_norm: str) -> float:
    """How much of the original a text repeats: the share of the original's 3-grams in it.

    0.0 when the copy changes any number of the original (an amount, a count,
    a date): "亏损37%" and "亏损12%" are two customers' stories, not one story
    reposted. Both arguments are :func:`normalised` texts. A repost with a
    comment added scores 1.0; a 25-character post with a three-character name
    swapped in the middle about 0.7, but a swap at the very start or end
    changes fewer 3-grams (> 0.9), which is why the dedup stage also compares
    the watched entities (branches, products) the two texts name.
    """
    if not set(_DIGITS.findall(original_norm)) <= set(_DIGITS.findall(copy_norm)):
        return 0.0
    orig = _grams(original_norm)
    if not orig:
        return 0.0
    return len(orig & _grams(copy_norm)) / len(orig)


def jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of the 3-gram sets of two texts (0.0 when either is empty)."""
    sa, sb = shingles(a), shingles(b)
    if not sa or not sb:
        return 0.0
    return len(sa & sb) / len(sa | sb)
