"""The one video layer: open a file with the decoder that reads it right, its presentation
times, chunked reads, and worded errors. `dkp data` (ingest.videos.probe) and `dkp frames`
(frames.decode) both go through it.

decord (faster) reads what it can; PyAV (pyav_reader.py) reads what decord cannot decode
(AV1: decord's bundled FFmpeg has no decoder for it) or would decode wrongly (an MP4 without
a sync-sample table). A file no decoder can open raises VideoError with a reason free of
paths and clock times (zero bytes, not a video, audio only, zero frames, a truncated
container, a codec neither decodes), so manifests and frame indexes are the same wherever
and whenever they are built.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile

import numpy as np

from ..errors import VideoError
from . import pyav_reader

CHUNK = 32  # frames per read: bounds the memory of one native-resolution batch
_LOG_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")
_CHECK_FAILED = re.compile(r"Check failed: .*\(-?\d+ vs\. -?\d+\) (.+)$")
_READ_FAILED = re.compile(r"av_read_frame failed with (-?\d+)")
# FFmpeg error codes decord prints as bare numbers (negated AVERROR tags), as av_strerror words them
_AVERROR = {1094995529: "Invalid data found when processing input", 541478725: "End of file"}


@contextlib.contextmanager
def captured_stderr():
    """Redirect file descriptor 2 to a temporary file for the block; yields a reader of its text.

    decord's C++ logger writes open failures straight to fd 2, bypassing Python: captured,
    they become the `reason` instead of noise between progress bars.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: (tmp.seek(0), tmp.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def clean_reason(message: str, path: str | None = None) -> str:
    """One deterministic line from a decord/ffmpeg message: no clock time, source line or file
    path."""
    text = _LOG_PREFIX.sub("", message)
    if path:
        text = text.replace(str(path), "<file>").replace(os.path.basename(str(path)), "<file>")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if any("cannot find video stream" in ln for ln in lines):
        return "no video stream"
    for ln in lines:  # "ERROR opening: <file>, Invalid data found when processing input"
        if ln.startswith("ERROR opening:"):
            return "cannot open: " + ln.split(",", 1)[-1].strip()
    for (
        ln
    ) in lines:  # "Error: av_read_frame failed with 1094995529": packet data cut short or corrupt
        found = _READ_FAILED.search(ln)
        if found:
            code = abs(int(found.group(1)))
            return "cannot read packets: " + _AVERROR.get(code, f"FFmpeg error {code}")
    for ln in lines:  # "Check failed: <C++ condition> (-22 vs. 0) Cannot create buffer source"
        found = _CHECK_FAILED.search(ln)
        if found:
            return "cannot open: " + found.group(1)
    return lines[0] if lines else "unknown decord error"


def open_reader(path: str):
    """decord.VideoReader on the CPU with one decoding thread (parallelism is across videos).

    Raises VideoError(reason) when the file cannot be opened or has no frames.
    """
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    try:
        size = os.path.getsize(path)
    except OSError as exc:  # gone since ingest, or a broken link
        raise VideoError(f"cannot open: {exc.strerror}") from None
    if size == 0:
        raise VideoError("empty file (0 bytes)")
    with captured_stderr() as read_log:
        try:
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        except Exception as exc:  # decord raises RuntimeError or DECORDError, both with C++ text
            raise VideoError(clean_reason(read_log() + "\n" + str(exc), path)) from None
    if len(reader) == 0:
        raise VideoError("zero frames")
    return reader


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """Yield (type, payload start, payload end) of the MP4 boxes in data[start:end], one level."""
    end = len(data) if end is None else end
    off = start
    while off + 8 <= end:
        size, typ, head = (
            int.from_bytes(data[off : off + 4], "big"),
            bytes(data[off + 4 : off + 8]),
            8,
        )
        if size == 1 and off + 16 <= end:  # 64-bit size follows the type
            size, head = int.from_bytes(data[off + 8 : off + 16], "big"), 16
        elif size == 0:  # to the end
            size = end - off
        if size < head or off + size > end:
            return
        yield typ, off + head, off + size
        off += size


def lacks_sync_table(moov: bytes) -> bool:
    """True when the first video track of an MP4 `moov` box has samples but no sync-sample table
    (`stss`). By the MP4 rules every frame is then a keyframe, and decord seeks by it."""
    for typ, lo, hi in _boxes(moov):
        if typ != b"trak":
            continue
        mdia = next(((a, b) for t, a, b in _boxes(moov, lo, hi) if t == b"mdia"), None)
        if mdia is None:
            continue
        kids = {t: (a, b) for t, a, b in _boxes(moov, *mdia)}
        hdlr = kids.get(b"hdlr")
        if (
            hdlr is None or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide"
        ):  # version/flags, pre_defined, handler
            continue
        stbl = next(
            ((a, b) for t, a, b in _boxes(moov, *kids.get(b"minf", (0, 0))) if t == b"stbl"), None
        )
        tables = {t: (a, b) for t, a, b in _boxes(moov, *stbl)} if stbl else {}
        sizes = tables.get(b"stsz") or tables.get(b"stz2")
        samples = int.from_bytes(moov[sizes[0] + 8 : sizes[0] + 12], "big") if sizes else 0
        return samples > 1 and b"stss" not in tables  # a fragmented MP4 keeps its samples elsewhere
    return False


def mp4_lacks_sync_table(path: str) -> bool:
    """lacks_sync_table on the file's `moov` box; False for a file that is not an MP4
    (MKV, WebM)."""
    with open(path, "rb") as fh:
        off, total = 0, os.fstat(fh.fileno()).st_size
        while off + 8 <= total:
            fh.seek(off)
            head = fh.read(16)
            size, typ = int.from_bytes(head[:4], "big"), head[4:8]
            if not typ.isalnum():  # not an MP4 box tree (Matroska, text, ...)
                return False
            hsize = 8
            if size == 1:
                size, hsize = int.from_bytes(head[8:16], "big"), 16
            elif size == 0:
                size = total - off
            if size < hsize:
                return False
            if typ == b"moov":
                fh.seek(off + hsize)
                return lacks_sync_table(fh.read(size - hsize))
            off += size
    return False


def open_video(path: str) -> tuple[str, object]:
    """(decoder, reader) for a file: ("decord", decord.VideoReader) where decord reads it right,
    else ("pyav", pyav_reader.PyAVReader). Raises VideoError with every decoder's reason."""
    try:
        reader = open_reader(path)
    except VideoError as exc:
        if str(exc) != "no video stream":  # a file broken for any decoder: decord's reason
            raise
        # decord says so for a stream it has no decoder for, too (AV1), and for a container it
        # cannot parse: PyAV tells these from a file that really has no video (audio only)
        codec = pyav_reader.video_codec(path)
        if codec is None:
            raise
        why = f"unsupported codec {codec} in decord"
    else:
        try:
            lacks = mp4_lacks_sync_table(path)
        except OSError as exc:
            raise VideoError(f"cannot open: {exc.strerror}") from None
        if not lacks:
            return "decord", reader
        why = "MP4 without sync-sample table (decord would seek to wrong frames)"
    try:
        return "pyav", pyav_reader.PyAVReader(path)
    except VideoError as exc:
        raise VideoError(f"{why}; PyAV failed: {exc}") from None


def presentation_times(reader) -> tuple[np.ndarray, float]:
    """(start time of every frame, end of the last frame) in seconds; from the frame rate where the
    container's timestamps are unusable (not finite or not increasing). Raises VideoError when
    both are (a broken time-to-sample table: every frame at 0 s, frame rate NaN)."""
    n = len(reader)
    ts = reader.get_frame_timestamp(list(range(n))).astype(np.float64)
    pts, end = ts[:, 0], float(ts[-1, 1])
    if not (np.all(np.isfinite(ts)) and np.all(np.diff(pts) > 0) and end > pts[-1] >= 0):
        fps = reader.get_avg_fps()
        if not (math.isfinite(fps) and fps > 0):
            raise VideoError(f"invalid frame rate {fps}")  # the reason ingest's probe gives
        pts, end = np.arange(n) / fps, n / fps
    return np.round(pts, 6), end


def unpad(frame: np.ndarray) -> np.ndarray:
    """Undo decord's padded rows: for some widths (16, 24, 48 px, ...) a frame comes back as
    (h, w, c) with c != 3, each row holding 3w bytes of RGB then padding."""
    h, w, c = frame.shape
    return frame if c == 3 else frame.reshape(h, w * c)[:, : 3 * w].reshape(h, w, 3)


def read_sequential(reader, idx: np.ndarray):
    """Yield each wanted frame (non-decreasing indices), skipping the others without RGB
    conversion."""
    pos, last = 0, None
    for i in idx.tolist():
        if i >= pos:
            if i > pos:
                reader.skip_frames(i - pos)
            last, pos = unpad(reader.next().asnumpy()), i + 1
        yield last  # i < pos: the same frame again (extraction fps above the native rate)


def read_chunks(path: str, reader, idx: np.ndarray):
    """Yield uint8 (n, h, w, 3) chunks of the wanted frames, in order."""
    import decord

    for lo in range(0, len(idx), CHUNK):
        try:
            yield reader.get_batch(idx[lo : lo + CHUNK].tolist()).asnumpy()
        except decord.DECORDError as exc:
            if "size must exactly match" not in str(exc):
                raise
            # decord bug: get_batch cannot copy padded rows (see unpad); read the rest one by one
            rest = list(read_sequential(open_reader(path), idx[lo:]))
            for k in range(0, len(rest), CHUNK):
                yield np.stack(rest[k : k + CHUNK])
            return
