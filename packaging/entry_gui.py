"""The bundle's `curator-gui` program: the desktop app (PyInstaller entry script)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # Worker processes (forkserver/spawn) re-enter this executable; let them run their task.
    multiprocessing.freeze_support()
    from ui.app import main

    sys.exit(main())
