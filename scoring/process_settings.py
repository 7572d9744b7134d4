"""What an entry point sets for its whole process, once, before any model runtime loads.

Importing `scoring` changes nothing global: no environment variable, no
dependency's switch. The entry points own their process and call
`configure_process` first thing: the command line (``scoring``, ``python -m
scoring``), the server (`scoring.server.serve`) and every dashboard page
(`dashboard.page_setup`). A program that imports the library decides these
for itself; `configure_process` is public for one that wants the same.

Every setting is a default (`os.environ.setdefault`): a value the user
exported wins. They are environment variables because the libraries read them
once, when they load, so they must be set before the first model is loaded.

Imports nothing of ours.
"""

from __future__ import annotations

import os

PROCESS_ENVIRONMENT: dict[str, str] = {
    # OpenMP threads that spin while they wait slow torch (and llama.cpp) several-fold when other processes
    # share the cores; waiting passively costs little when they do not. Read when the OpenMP runtime loads.
    "OMP_WAIT_POLICY": "PASSIVE",
    # Every model we load is a local folder opened with local_files_only=True; these make any other
    # request to a model hub, by a dependency, fail at once instead of waiting on the network.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # No "Loading weights" bars from transformers / huggingface_hub on the command line's stderr or the
    # server's log: our own progress reports say what loads (read when those libraries are imported).
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}
"""The environment an entry point's process runs in, unless the user set a variable otherwise."""


def configure_process() -> None:
    """Set `PROCESS_ENVIRONMENT`'s defaults in this process: called by the entry points, never on import."""
    for variable, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(variable, value)
