"""The peers hagate's Alexa handler is measured against, as Lambda modules (`lambda_handler`).

REFERENCE behaves as Home Assistant's documented Lambda handler does, with the client
certificate added as the seed's author added it: a new urllib3 PoolManager (so a new
connection and TLS handshake) for every directive, a 2 s connect and 10 s read timeout.
FLOOR is no handler at all: one kept HTTPS connection and a bare POST of the directive, the
least any handler can cost. Both read their settings from bench.json next to them.
"""

REFERENCE = """
import json
import os

import urllib3

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "bench.json")) as f:
    CONF = json.load(f)


def lambda_handler(event, context):
    directive = event.get("directive")
    token = CONF["token"]
    http = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.path.join(HERE, "ca.crt"),
        cert_file=os.path.join(HERE, "client.crt"),
        key_file=os.path.join(HERE, "client.key"),
        server_hostname=CONF["name"],
        timeout=urllib3.Timeout(connect=2.0, read=10.0),
    )
    response = http.request(
        "POST",
        "https://{}:{}/api/alexa/smart_home".format(CONF["address"], CONF["port"]),
        headers={
            "Authorization": "Bearer {}".format(token),
            "Content-Type": "application/json",
            "Host": "{}:{}".format(CONF["name"], CONF["port"]),
        },
        body=json.dumps(event).encode("utf-8"),
    )
    if response.status >= 400:
        return {"event": {"payload": {"type": "INVALID_AUTHORIZATION_CREDENTIAL"
                if response.status in (401, 403) else "INTERNAL_ERROR",
                "message": response.data.decode("utf-8")}}}
    return json.loads(response.data.decode("utf-8"))
"""

FLOOR = """
import http.client
import json
import os
import socket
import ssl

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "bench.json")) as f:
    CONF = json.load(f)
CTX = ssl.create_default_context(cafile=os.path.join(HERE, "ca.crt"))
CTX.load_cert_chain(os.path.join(HERE, "client.crt"), os.path.join(HERE, "client.key"))
CONN = None


def lambda_handler(event, context):
    global CONN
    if CONN is None:
        sock = socket.create_connection((CONF["address"], CONF["port"]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        CONN = http.client.HTTPConnection(CONF["name"], CONF["port"])
        CONN.sock = CTX.wrap_socket(sock, server_hostname=CONF["name"])
    CONN.request("POST", "/api/alexa/smart_home", body=json.dumps(event).encode(), headers={
        "Authorization": "Bearer " + CONF["token"], "Content-Type": "application/json"})
    return json.loads(CONN.getresponse().read())
"""
