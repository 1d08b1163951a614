"""kernelform's reads do not count as user activity on the server.

jupyter_server records every authenticated API request as activity (what
``GET api/status`` reports as ``last_activity``, and what JupyterHub's idle
culler reads) unless it carries ``no_track_activity=1``; a controller reading
every minute must not keep an idle server awake.
"""

from __future__ import annotations

from kernelform.client import JupyterClient
from tests.support.live_jupyter import JupyterServer


def last_activity(server: JupyterServer) -> str:
    # api/status itself does not count as activity.
    return str(server.api_json("GET", "api/status")["last_activity"])


def test_reads_leave_the_servers_activity_alone(lab: JupyterServer) -> None:
    jupyter = lab
    with JupyterClient(jupyter.url, jupyter.token, backoff=0) as client:
        before = last_activity(jupyter)
        client.list_kernels()
        client.list_sessions()
        client.list_kernelspecs()
        client.server_version()
        assert last_activity(jupyter) == before
    # The same read without the argument does count: the check above can fail.
    assert jupyter.api("GET", "api/kernels").status_code == 200
    assert last_activity(jupyter) > before
