"""The replication engine: volumes, the bitmap (intent log), the mirror and its resync.

Pure Python (no Qt). See the module docstrings of :mod:`.volume`, :mod:`.bitmap`,
:mod:`.mirror` and :mod:`.resync` for the design.
"""

from __future__ import annotations

from core.replication.bitmap import (
    DEFAULT_CHUNK_SIZE,
    Bitmap,
    BitmapError,
    BitmapInvalid,
    IntentLog,
    MemoryBitmap,
    check_bitmap_location,
)
from core.replication.mirror import (
    ASYNC_MAX_BYTES,
    ASYNC_MAX_WRITES,
    Mirror,
    MirrorError,
    MirrorNotOnline,
    NoBitmapState,
    ResyncTuning,
    SourceWriteError,
    TargetSpec,
    TargetStatus,
)
from core.replication.resync import (
    DEFAULT_SPEED_LIMIT_KBPS,
    DEFAULT_SPEED_LIMIT_MIN_KBPS,
    Resync,
    ResyncBusy,
    ResyncError,
    ResyncProgress,
    ResyncResult,
)
from core.replication.volume import (
    ChunkLocks,
    Volume,
    VolumeError,
    VolumeRangeError,
    VolumeSizeMismatch,
)

__all__ = [
    "ASYNC_MAX_BYTES",
    "ASYNC_MAX_WRITES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SPEED_LIMIT_KBPS",
    "DEFAULT_SPEED_LIMIT_MIN_KBPS",
    "Bitmap",
    "BitmapError",
    "BitmapInvalid",
    "ChunkLocks",
    "IntentLog",
    "MemoryBitmap",
    "Mirror",
    "MirrorError",
    "MirrorNotOnline",
    "NoBitmapState",
    "Resync",
    "ResyncBusy",
    "ResyncError",
    "ResyncProgress",
    "ResyncResult",
    "ResyncTuning",
    "SourceWriteError",
    "TargetSpec",
    "TargetStatus",
    "Volume",
    "VolumeError",
    "VolumeRangeError",
    "VolumeSizeMismatch",
    "check_bitmap_location",
]
