"""Shared code of the lab's cluster stand-ins (apiserver, kube-controller-manager,
kube-scheduler): Kubernetes Status objects, klog-style logging, time formats,
kubeconfig loading, a small HTTPS API client and a TLS server that does the
handshake on the connection's own thread.

Python 3 standard library plus python3-yaml only: this machine cannot run the
real Kubernetes binaries, so these stand in for them wherever a playbook can
observe them.
"""
import base64
import datetime
import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer

_log_lock = threading.Lock()


def klog(level, src, msg):
    """One klog-formatted line on stderr (unbuffered: it goes to the journal)."""
    now = datetime.datetime.now()
    line = "%s%s %7d %s] %s\n" % (level, now.strftime("%m%d %H:%M:%S.%f"), os.getpid(), src, msg)
    with _log_lock:
        sys.stderr.write(line)
        sys.stderr.flush()


def info(src, msg):
    klog("I", src, msg)


def warn(src, msg):
    klog("W", src, msg)


def error(src, msg):
    klog("E", src, msg)


def now_time():
    """metav1.Time: seconds precision, UTC."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    """metav1.MicroTime, as leases carry it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s):
    if not s:
        return None
    s = s.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.datetime.strptime(s, fmt).replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            pass
    return None


def status(code, reason, message, details=None):
    """A metav1.Status failure, as the apiserver and the delegated-auth
    filters of the components send it."""
    st = {"kind": "Status", "apiVersion": "v1", "metadata": {},
          "status": "Failure", "message": message, "reason": reason, "code": code}
    if details is not None:
        st["details"] = details
    return st


def qualified(resource, group):
    return resource + ("." + group if group else "")


def forbidden_message(user, verb, resource=None, group="", name=None,
                      namespace=None, path=None):
    """The RBAC authorizer's text, word for word."""
    if path is not None:
        return 'forbidden: User "%s" cannot %s path "%s"' % (user, verb, path)
    what = qualified(resource, group)
    if name:
        what += ' "%s"' % name
    scope = ('in the namespace "%s"' % namespace) if namespace else "at the cluster scope"
    return '%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" %s' % (
        what, user, verb, resource, group, scope)


def peer_identity(sslsock):
    """(user, groups) from a verified client certificate, or None."""
    try:
        cert = sslsock.getpeercert()
    except (ValueError, AttributeError):
        return None
    if not cert:
        return None
    user, groups = None, []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and user is None:
                user = value
            elif key == "organizationName":
                groups.append(value)
    if not user:
        return None
    return user, groups


class TLSServer(ThreadingHTTPServer):
    """HTTPS server whose TLS handshake runs on the per-connection thread, so
    one slow or failing client never blocks the others."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, handler, context, log_src="server.go:3215"):
        self.tls_context = context
        self.log_src = log_src
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            # Go's http server logs exactly this kind of line.
            info(self.log_src, "http: TLS handshake error from %s:%d: %s" % (
                client_address[0], client_address[1], go_tls_error(e)))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass


def go_tls_error(e):
    """Rephrases an OpenSSL error the way Go's crypto/tls says it, since the
    real components are Go programs and their logs are what users search."""
    text = str(e)
    low = text.lower()
    if "certificate_verify_failed" in low or "certificate verify failed" in low:
        if "self-signed" in low or "self signed" in low or "local issuer" in low \
                or "unable to get issuer" in low:
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        if "expired" in low or "not yet valid" in low:
            return "tls: failed to verify certificate: x509: certificate has expired or is not yet valid"
        if "mismatch" in low or "ip address" in low or "hostname" in low:
            return "tls: failed to verify certificate: x509: certificate is valid for other names, not this one"
        return "tls: failed to verify certificate: x509: " + text
    if "unknown ca" in low:
        return "remote error: tls: unknown certificate authority"
    if "bad certificate" in low or "certificate required" in low:
        return "remote error: tls: bad certificate"
    if "key values mismatch" in low:
        return "tls: private key does not match public key"
    if "no start line" in low or "pem lib" in low:
        return "tls: failed to find any PEM data in certificate input"
    return text


def _load_chain_from_memory(ctx, cert_pem, key_pem):
    """ssl can only load a client certificate from files: write them into a
    private directory on memory-backed /dev/shm when possible, load, and
    remove them at once."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="standin-", dir=base)
    try:
        cp, kp = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        for p, data in ((cp, cert_pem), (kp, key_pem)):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cp, kp)
    finally:
        for name in os.listdir(d):
            os.unlink(os.path.join(d, name))
        os.rmdir(d)


def _field_bytes(d, key):
    """kubeconfig field: `<key>-data` (base64) or `<key>` (a path)."""
    if d.get(key + "-data"):
        return base64.b64decode(d[key + "-data"])
    if d.get(key):
        with open(d[key], "rb") as f:
            return f.read()
    return None


class KubeconfigError(Exception):
    pass


def load_kubeconfig(path):
    """-> dict(server, ca, cert, key, token, insecure, user, context)."""
    import yaml  # python3-yaml
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise KubeconfigError("stat %s: %s" % (path, (e.strerror or str(e)).lower()))
    except yaml.YAMLError as e:
        raise KubeconfigError('error loading config file "%s": %s' % (path, e))
    if not isinstance(cfg, dict):
        raise KubeconfigError('error loading config file "%s": not a kubeconfig' % path)
    ctx_name = cfg.get("current-context")
    if not ctx_name:
        raise KubeconfigError("invalid configuration: no configuration has been provided")

    def named(section, name):
        for item in cfg.get(section) or []:
            if item.get("name") == name:
                return item.get(section[:-1]) or {}
        return None
    ctx = named("contexts", ctx_name)
    if ctx is None:
        raise KubeconfigError("invalid configuration: context was not found for specified context: %s"
                              % ctx_name)
    cluster = named("clusters", ctx.get("cluster"))
    if cluster is None:
        raise KubeconfigError('invalid configuration: cluster "%s" not found' % ctx.get("cluster"))
    user = named("users", ctx.get("user")) or {}
    try:
        return {
            "server": cluster.get("server"),
            "ca": _field_bytes(cluster, "certificate-authority"),
            "insecure": bool(cluster.get("insecure-skip-tls-verify")),
            "cert": _field_bytes(user, "client-certificate"),
            "key": _field_bytes(user, "client-key"),
            "token": user.get("token"),
            "user": ctx.get("user"),
            "context": ctx_name,
        }
    except OSError as e:
        raise KubeconfigError("unable to read client-cert or client-key: %s" % e)


class ApiError(Exception):
    """An HTTP reply that is not 2xx: carries the code and the Status body."""

    def __init__(self, code, body, text=""):
        self.code = code
        self.body = body if isinstance(body, dict) else {}
        self.reason = self.body.get("reason", "")
        self.text = text
        super().__init__(self.body.get("message") or text or ("HTTP %d" % code))


class TransportError(Exception):
    pass


class Client:
    """Talks to the apiserver like client-go would: client certificate or
    bearer token from a kubeconfig, the cluster CA, JSON."""

    def __init__(self, kubeconfig_path, user_agent="standin", timeout=10):
        kc = load_kubeconfig(kubeconfig_path)
        self.server = (kc["server"] or "").rstrip("/")
        if not self.server:
            raise KubeconfigError("invalid configuration: no server found for cluster")
        from urllib.parse import urlsplit
        u = urlsplit(self.server)
        self.host, self.port = u.hostname, u.port or 443
        self.ua = user_agent
        self.timeout = timeout
        self.token = kc["token"]
        self.user = kc["user"]
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if kc["insecure"]:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif kc["ca"]:
            try:
                ctx.load_verify_locations(cadata=kc["ca"].decode())
            except ssl.SSLError as e:
                raise KubeconfigError("unable to load root certificates: %s" % go_tls_error(e))
        if kc["cert"] and kc["key"]:
            try:
                _load_chain_from_memory(ctx, kc["cert"], kc["key"])
            except ssl.SSLError as e:
                raise KubeconfigError(go_tls_error(e))
        self.ctx = ctx
        self._local = threading.local()

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                            timeout=self.timeout)
            self._local.conn = c
        return c

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"Accept": "application/json", "User-Agent": self.ua}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                break
            except (OSError, http.client.HTTPException) as e:
                c.close()
                self._local.conn = None
                stale = isinstance(e, (http.client.RemoteDisconnected, BrokenPipeError,
                                       ConnectionResetError))
                if attempt == 0 and stale:
                    continue
                if isinstance(e, ssl.SSLError):
                    msg = go_tls_error(e)
                elif isinstance(e, OSError):
                    msg = "dial tcp %s:%d: connect: %s" % (self.host, self.port,
                                                           (e.strerror or str(e)).lower())
                else:
                    msg = str(e)
                raise TransportError('%s "%s%s": %s' % (method[:1] + method[1:].lower(),
                                                        self.server, path, msg))
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = None
        if r.status >= 300:
            raise ApiError(r.status, obj, raw.decode(errors="replace"))
        return obj if obj is not None else raw.decode(errors="replace")
