#!/usr/bin/env python3
"""Polls the controller manager's Lease every 0.2 s until STOPFILE exists.

    lease_poll.py OUT STOPFILE

One line per sample: `t holder transitions renew` (t and renew in epoch
seconds; `- - -` when the read failed). One kept-alive TLS connection, so a
5 Hz poll costs the 2 shared cores less than a kubectl per sample would, and
every renewal is seen (the stand-in renews every retry period, 2 s).
Env: KCMRUN_LAB_KUBE_APISERVER, KCMRUN_LAB_CA_CERT, KCMRUN_LAB_ADMIN_CERT,
KCMRUN_LAB_ADMIN_KEY (from `kcmrun lab env`).
"""
import datetime
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"


def epoch(ts):
    # MicroTime: 2026-12-05T06:00:00.123456Z
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: lease_poll.py OUT STOPFILE")
    out, stop = sys.argv[1], sys.argv[2]
    url = urllib.parse.urlsplit(os.environ["KCMRUN_LAB_KUBE_APISERVER"])
    ctx = ssl.create_default_context(cafile=os.environ["KCMRUN_LAB_CA_CERT"])
    ctx.load_cert_chain(os.environ["KCMRUN_LAB_ADMIN_CERT"], os.environ["KCMRUN_LAB_ADMIN_KEY"])
    conn = None
    with open(out, "w", buffering=1) as f:
        while not os.path.exists(stop):
            t = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=2)
                conn.request("GET", PATH)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise OSError("HTTP %d" % r.status)
                s = json.loads(body)["spec"]
                f.write("%.3f %s %d %.6f\n" % (t, s.get("holderIdentity", "-"), s.get("leaseTransitions", 0),
                                               epoch(s["renewTime"])))
            except (OSError, ValueError, KeyError, http.client.HTTPException):
                f.write("%.3f - - -\n" % t)
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(max(0.0, 0.2 - (time.time() - t)))


if __name__ == "__main__":
    main()
