import logging
import os
import sys

from .cli import main

status = main()
# A job's outputs are complete and renamed into place when main() returns. Skipping the
# interpreter's teardown (unloading torch and its CUDA libraries: 1-2 s of every model job) is
# safe after flushing what is buffered, and saves that time in each of the workflow's jobs.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(status)
