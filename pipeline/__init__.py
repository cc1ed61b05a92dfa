"""escrutinio's recognition pipeline: pure functions and small dataclasses over numpy arrays.

Untrusted images: OpenCV's own decoder limit is set here, before anything imports cv2, to the
configured scan pixel limit (``ESCRUTINIO_MAX_SCAN_PIXELS``, default 60 million), so a
decompression bomb that slips past the header check in ``pipeline.read.load_scan`` is still
refused by the decoder.
"""

import os

os.environ.setdefault(
    "OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("ESCRUTINIO_MAX_SCAN_PIXELS", "60000000")
)
