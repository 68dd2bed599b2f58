"""Write frames as an H.264 MP4 (libx264, yuv420p) with PyAV: the I/O half of generation."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

# x264 options. No B-frames, so decoders need no reordering. asm=0: x264's hand-written
# kernels are not bit-exact with each other (the bytes depend on which instruction sets the
# CPU has), and its AVX-512 kernels made the bytes depend on what the process had encoded
# before (bench/README.md, "Encoder determinism"). The portable C path is a pure function
# of the frames on every CPU, at about twice the encode time.
X264_OPTIONS = {
    "crf": "23",  # x264 default: luma error far below the added noise, tile cells survive
    "preset": "veryfast",  # at 64 px about as small as slower presets, twice as fast
    "x264-params": "bframes=0:asm=0",
}

# BT.601 limited range ("tv"), what decoders assume for untagged SD video.
_RGB_TO_YUV = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float32,
)


def rgb_to_yuv420p(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (T, H, W, 3) -> planar yuv420p as PyAV lays it out, (T, H * 3 / 2, W).

    Converting here rather than in the encoder keeps the encoder's input a
    plain function of the frames; chroma is the mean of each 2 x 2 block.
    """
    t, h, w, _ = frames.shape
    rgb = [frames[..., i].astype(np.float32) / np.float32(255) for i in range(3)]
    y, cb, cr = (sum(np.float32(m[i]) * rgb[i] for i in range(3)) for m in _RGB_TO_YUV)
    y = 16 + 219 * y
    u, v = (128 + 224 * c.reshape(t, h // 2, 2, w // 2, 2).mean(axis=(2, 4)) for c in (cb, cr))
    y, u, v = (np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in (y, u, v))
    planes = np.concatenate([y.reshape(t, -1), u.reshape(t, -1), v.reshape(t, -1)], axis=1)
    return planes.reshape(t, h * 3 // 2, w)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) at a constant frame rate.

    H and W must be even (4:2:0). One encoder thread: parallelism comes from encoding many videos at
    once.
    """
    import av

    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs an even frame size, found {w}x{h}")
    rate = Fraction(fps).limit_denominator(1001)
    yuv = rgb_to_yuv420p(frames)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = dict(X264_OPTIONS)
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(yuv[k], format="yuv420p")
            frame.pts = k
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
