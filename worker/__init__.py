"""The Celery worker: tasks, their job lifecycle, the face pipeline."""

import os

# One BLAS thread per worker process, set before anything imports numpy: the machine's cores
# are already shared by the prefork children, and multi-threaded BLAS gains little for face
# matching while hurting under load (bench/bench_faces.py).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
