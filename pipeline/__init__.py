"""escrutinio's recognition pipeline: pure functions and small dataclasses over numpy arrays.

Untrusted images: OpenCV's own decoder limit is set here, before anything imports cv2, to the
configured scan pixel limit (``ESCRUTINIO_MAX_SCAN_PIXELS``, default 60 million), so a
decompression bomb that slips past the header check in ``pipeline.read.load_scan`` is still
refused by the decoder.

Threads: numpy's OpenBLAS keeps a helper thread per core that spins after every matrix
product. The pipeline's products are tiny (fits of a few hundred points), so the spinning was
pure waste: 20-30% of a telegram's CPU time (0.70-0.77 -> 0.49-0.58 CPU s per 2019 telegram),
taken from the other worker process on the same cores. One BLAS thread, set before numpy loads.
"""

import os

os.environ.setdefault(
    "OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("ESCRUTINIO_MAX_SCAN_PIXELS", "60000000")
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
