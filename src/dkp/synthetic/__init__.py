"""`dkp synthesize`: the default dataset, in ActivityNet v1.3 format, generated from
`data.synthetic`.

Modules: `classes` (shapes and tiles), `spec` (ids, lengths, segments: pure and
cheap), `annotations` (the ActivityNet JSON), `scene` and `render` (pure frame
rendering), `writer` (H.264 MP4), `generate` (the stage).
"""

from .generate import run

__all__ = ["run"]
