"""tuspyserver under uvicorn on 127.0.0.1: the Python peer of pixdrop's benchmark.

    PYTHON tuspyserver_app.py PORT DIRECTORY

Runs in the peers' own virtual environment. One uvicorn worker, like the pixdrop server under
test, with uvloop and httptools (uvicorn[standard]) and no access log. The router is
tuspyserver's stock one (``create_tus_router``): files go to DIRECTORY, no hooks.
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from tuspyserver import create_tus_router


def main() -> None:
    port, directory = int(sys.argv[1]), sys.argv[2]
    app = FastAPI()
    app.include_router(create_tus_router(prefix="files", files_dir=directory))
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
