"""escrutinio's recognition pipeline: pure functions and small dataclasses over numpy arrays.

Untrusted images: OpenCV's own decoder limit is set here, before anything imports cv2, to the
configured scan pixel limit (``ESCRUTINIO_MAX_SCAN_PIXELS``, default 60 million), so a
decompression bomb that slips past the header check in ``pipeline.read.load_scan`` is still
refused by the decoder.

Threads: numpy's OpenBLAS keeps a helper thread per core that spins after every matrix
product. The pipeline's products are tiny, so the spinning was pure waste, taken from the
other worker process on the same cores: a Celery worker with 2 processes spent 0.74-0.76 CPU s
per 2019 telegram with it and 0.63-0.66 without (``bench/bench_worker.py --processes 2
--chunks 8``, runs alternating). One BLAS thread, set before numpy loads.
"""

import os

os.environ.setdefault(
    "OPENCV_IO_MAX_IMAGE_PIXELS", os.environ.get("ESCRUTINIO_MAX_SCAN_PIXELS", "60000000")
)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
