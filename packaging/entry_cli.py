"""The bundle's `curator` program: the command-line interface (PyInstaller entry script)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Worker processes (forkserver/spawn) re-enter this executable; let them run their task.
    multiprocessing.freeze_support()
    from curator.cli import main

    sys.exit(main())
