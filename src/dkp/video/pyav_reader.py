"""Decode a video with PyAV (FFmpeg with libdav1d) where decord cannot be trusted with it.

decord 0.6's bundled FFmpeg has no AV1 decoder, and on an MP4 without a sync-sample table it
seeks to inter-coded frames and returns wrong pictures; dkp.video.open_video sends those here.
PyAVReader offers the part of decord.VideoReader that dkp uses (len, get_avg_fps,
get_frame_timestamp), so sampling and timestamps go through the same code as decord's, and
decodes the wanted frames in one pass from the start: no seeking, so no keyframe table to
mislead it. Times come from the container's packets (pts, duration), as decord's do.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import VideoError


def reason(exc: BaseException, path: str) -> str:
    """One line from a PyAV error: FFmpeg's own words, without the file path."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    text = str(text).replace(str(path), "<file>").replace(os.path.basename(str(path)), "<file>")
    return " ".join(text.split())


def video_codec(path: str) -> str | None:
    """Codec name (e.g. "av1") of the file's video stream, None if it has none. Raises VideoError
    when PyAV cannot open the container either."""
    import av

    try:
        with av.open(str(path)) as container:
            if not (
                container.streams.video or container.streams.audio
            ):  # an MP4 cut before its index
                raise VideoError("cannot open: the container lists no audio or video stream")
            stream = container.streams.best("video")
            if stream is None:
                return None
            context = stream.codec_context  # None where this FFmpeg has no decoder for the codec
            return context.codec.canonical_name if context is not None else "unknown"
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"cannot open: {reason(exc, path)}") from None


class PyAVReader:
    """A video opened with PyAV: its packets' times read at opening and its first frame decoded
    (so an absent or failing decoder shows here, as decord's open does). Raises VideoError."""

    def __init__(self, path: str):
        import av

        self.path = str(path)
        try:
            with av.open(self.path) as container:
                stream = container.streams.best("video")
                if stream is None:
                    raise VideoError("no video stream")
                if stream.codec_context is None:
                    raise VideoError("cannot decode: no decoder for this codec in PyAV")
                self.stream_index = stream.index
                tb = stream.time_base
                rate = stream.average_rate or stream.guessed_rate
                packets = [(p.pts, p.duration) for p in container.demux(stream) if p.size]
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open: {reason(exc, self.path)}") from None
        if not packets:
            raise VideoError("zero frames")
        self._fps = float(rate) if rate else float("nan")
        if any(
            pts is None for pts, _ in packets
        ):  # no times: video.presentation_times uses the frame rate
            self._ts = np.full((len(packets), 2), np.nan)
            self._where: dict[int, int] = {}
        else:
            packets.sort()
            start = np.array([pts for pts, _ in packets], dtype=np.float64)
            stop = np.array([pts + (d or 0) for pts, d in packets], dtype=np.float64)
            self._ts = np.stack([start, stop], axis=1) * float(tb)
            self._where = {pts: i for i, (pts, _) in enumerate(packets)}
        try:
            next(self.frames(np.zeros(1, dtype=np.int64)))
        except VideoError as exc:
            raise VideoError(f"cannot decode: {exc}") from None

    def __len__(self) -> int:
        return len(self._ts)

    def get_avg_fps(self) -> float:
        return self._fps

    def get_frame_timestamp(self, indices) -> np.ndarray:
        """(start, end) seconds of each frame, frames in presentation order (as decord's)."""
        return self._ts[np.asarray(indices, dtype=np.int64)]

    def frames(self, idx: np.ndarray):
        """Yield the uint8 (h, w, 3) RGB frame of each index (non-decreasing), decoding from the
        start with one thread. Raises VideoError on a decoding error or a frame that never comes."""
        import av

        wanted, k, last = [int(i) for i in idx], 0, -1
        if not wanted:
            return
        try:
            with av.open(self.path) as container:
                stream = container.streams[self.stream_index]
                stream.codec_context.thread_count = 1  # parallelism is across videos
                for frame in container.decode(stream):
                    # a frame's place is its pts among the packets' (a dropped frame must not shift
                    # the rest)
                    last = self._where.get(frame.pts, last + 1)
                    if last > wanted[k]:
                        raise VideoError(f"frame {wanted[k]} was not decoded")
                    if last == wanted[k]:
                        rgb = frame.to_ndarray(format="rgb24")
                        while k < len(wanted) and wanted[k] == last:
                            yield rgb
                            k += 1
                        if k == len(wanted):
                            return
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(reason(exc, self.path)) from None
        raise VideoError(f"stream ended after {last + 1} of {len(self)} frames")

    def chunks(self, idx: np.ndarray, chunk: int):
        """Yield uint8 (n, h, w, 3) batches of the wanted frames, in order."""
        batch = []
        for frame in self.frames(idx):
            batch.append(frame)
            if len(batch) == chunk:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)
