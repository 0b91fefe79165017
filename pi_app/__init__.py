"""LatentDMX: drive DMX512 lights from small generative neural models."""

import os as _os

# The models are tiny: one BLAS thread is fastest, and spare cores stay free for the output
# thread and olad. Takes effect only if NumPy is not imported yet (as in the daemon).
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
