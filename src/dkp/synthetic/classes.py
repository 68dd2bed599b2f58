"""The 20 synthetic classes: 4 coarse shapes x 5 fine tile textures.

Coarse cue: the object's outline. Fine cue: a periodic 4x4 binary tile that
fills the object. Each shape has its own base tile; its 5 classes are variants
of it, each made by moving one "on" cell, so every tile keeps 8 of 16 cells on
(same density, hence the same mean colour). Tiles were chosen by a search so
that, under every cyclic shift, 90-degree rotation and mirror flip (the
texture is drawn at a random angle and phase, and training flips frames), two
variants of one shape differ in at least 4 cells and any two tiles in at least 2.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("disk", "square", "triangle", "cross")
TILE_FAMILIES = ("weave", "lattice", "zigzag", "braid")  # base tile of each shape, same order
VARIANTS = "abcde"

# Rows of 4 cells, read left to right, top to bottom; 1 = "on" colour.
_TILES = {
    "weave": (
        "0010111110000101",
        "0100011110000111",
        "1100110110000101",
        "0100111010100101",
        "0100111101000101",
    ),
    "lattice": (
        "0111011001100001",
        "0110011010100101",
        "0110001011100011",
        "0110111011000001",
        "1110010011100001",
    ),
    "zigzag": (
        "1101100110000101",
        "0110100110100101",
        "1110000110010101",
        "1110101010000101",
        "1110110110000100",
    ),
    "braid": (
        "1010001110000111",
        "1010010101000111",
        "1010101101000110",
        "1110001101000011",
        "0010001101100111",
    ),
}
NUM_CLASSES = len(SHAPES) * len(VARIANTS)


def class_parts(c: int) -> tuple[int, int]:
    """Class index -> (shape index, variant index).

    The first classes cycle through the shapes and, shifted by one each time,
    the variants, so a subset of the first k classes mixes both cues.
    """
    if not 0 <= c < NUM_CLASSES:
        raise ValueError(f"class index {c} outside 0..{NUM_CLASSES - 1}")
    shape = c % len(SHAPES)
    variant = (shape + c // len(SHAPES)) % len(VARIANTS)
    return shape, variant


def class_name(c: int) -> str:
    shape, variant = class_parts(c)
    return f"{SHAPES[shape]}-{TILE_FAMILIES[shape]}-{VARIANTS[variant]}"


def tile(c: int) -> np.ndarray:
    """The class's 4x4 binary tile as float32 (0 or 1)."""
    shape, variant = class_parts(c)
    bits = _TILES[TILE_FAMILIES[shape]][variant]
    return np.array([int(b) for b in bits], dtype=np.float32).reshape(4, 4)


def tile_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Fewest differing cells between a and any cyclic shift, rotation or flip of b."""
    best = 16
    for k in range(4):
        r = np.rot90(b, k)
        for f in (r, r[:, ::-1]):
            for dy in range(4):
                for dx in range(4):
                    best = min(best, int((np.roll(f, (dy, dx), (0, 1)) != a).sum()))
    return best
