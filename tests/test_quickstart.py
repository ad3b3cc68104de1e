"""The README's first Quick start command, `make tutorials`, serves the five tutorials from JupyterLab."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = {"01_regression_gradients.ipynb", "02_image_reconstruction.ipynb", "03_binary_segmentation.ipynb",
             "04_autoencoder.ipynb", "05_networks_in_code.ipynb"}


@pytest.mark.skipif(shutil.which("make") is None or not (REPO / ".venv" / "bin" / "jupyter").exists(),
                    reason="needs make and the project's .venv (made by `make setup`)")
def test_make_tutorials_serves_the_notebooks_with_the_default_jobs_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DIGITS_JOBS_DIR"}   # the default: ./digits-jobs
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    with socket.socket() as s:   # a free port, so that a server someone else runs on 8888 does not answer
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # -o: take the set-up venv as it is (this test checks the command, not the install); no browser
    cmd = ["make", "-s", "-o", ".venv/.installed", "tutorials",
           f"LAB_ARGS=--ServerApp.port={port} --ServerApp.port_retries=0 --ServerApp.open_browser=False"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output, family = [], []
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # never through $http_proxy
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            output.append(line)
            found = re.search(rf"(http://127\.0\.0\.1:{port})/lab\?token=(\w+)", line)
            url = found and (found.group(1), found.group(2))
        assert url, "JupyterLab did not start:\n" + "".join(output)
        base, token = url
        request = urllib.request.Request(f"{base}/api/contents/", headers={"Authorization": f"token {token}"})
        while True:   # the address is printed a moment before the server accepts connections
            try:
                listing = json.load(direct.open(request, timeout=30))
                break
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert TUTORIALS <= {item["name"] for item in listing["content"]}, "it opens in notebooks/"
        with direct.open(f"{base}/lab?token={token}", timeout=30) as page:
            assert page.status == 200 and b"JupyterLab" in page.read()
        family = psutil.Process(proc.pid).children(recursive=True)
        server = next(p for p in family if any("jupyter-lab" in part for part in p.cmdline()))
        assert server.environ().get("DIGITS_JOBS_DIR") == str(REPO / "digits-jobs"), \
            "kernels inherit the default jobs directory"
    finally:   # stop make, its shell and the server, and wait until they are gone
        family = family or (psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else [])
        os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs([*family], timeout=30)
        for p in alive:
            p.kill()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
