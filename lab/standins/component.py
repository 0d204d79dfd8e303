"""kube-controller-manager / kube-scheduler STAND-IN for the kcmrun lab (not
the real binaries).

What a playbook can observe behaves like the real component:
- `--version` prints `Kubernetes vX.Y.Z`; the flags of that version are
  accepted, an unknown or removed one fails in cobra/pflag's words, exit 1;
- --kubeconfig is read and used (client certificate, cluster CA); an
  apiserver that cannot be reached or a certificate that does not verify
  makes it exit with the Go-style x509 error on stderr (the journal);
- leader election on a coordination.k8s.io/v1 Lease, holderIdentity
  `<hostname>_<uuid>`, honouring --leader-elect-lease-duration,
  --leader-elect-renew-deadline and --leader-elect-retry-period, with
  client-go's jitter; the lease is not released on stop; a leader that cannot
  renew within the deadline exits (systemd restarts it);
- HTTPS on --bind-address:--secure-port with --tls-cert-file and
  --tls-private-key-file; /healthz is always allowed; every other path goes
  through delegated authentication (client CA from the
  extension-apiserver-authentication configmap, read with
  --authentication-kubeconfig) and authorization (a SubjectAccessReview made
  with --authorization-kubeconfig): 403 Status when denied, 500 with the
  SubjectAccessReview error when the review itself is forbidden, and on
  /metrics Prometheus text with leader_election_master_status.

Which component it is comes from the name it was built or installed under.
The version: $KUBE_STANDIN_VERSION, else a file `<binary>.version` beside
the executable, else the one built in (cluster.sh binary), else v1.28.4.
"""
import json
import os
import random
import signal
import socket
import ssl
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler

import standin_common as common

DEFAULT_VERSION = "v1.28.4"

COMPONENTS = {
    "kube-controller-manager": {"port": 10257, "lease": "kube-controller-manager",
                                "user": "system:kube-controller-manager",
                                "src": "controllermanager.go"},
    "kube-scheduler": {"port": 10259, "lease": "kube-scheduler",
                       "user": "system:kube-scheduler", "src": "server.go"},
}

# name: (type, first minor version, removed in minor version or None)
# Types: bool, int, float, duration, string, strings (comma list), map.
_COMMON = {
    "add-dir-header": ("bool", 0, 26), "alsologtostderr": ("bool", 0, 26),
    "log-backtrace-at": ("string", 0, 26), "log-dir": ("string", 0, 26),
    "log-file": ("string", 0, 26), "log-file-max-size": ("int", 0, 26),
    "logtostderr": ("bool", 0, 26), "one-output": ("bool", 0, 26),
    "skip-headers": ("bool", 0, 26), "skip-log-headers": ("bool", 0, 26),
    "stderrthreshold": ("string", 0, 26),
    "log-flush-frequency": ("duration", 0, None), "logging-format": ("string", 0, None),
    "log-json-info-buffer-size": ("string", 19, None), "log-json-split-stream": ("bool", 19, None),
    "v": ("int", 0, None), "vmodule": ("string", 0, None),
    "version": ("version", 0, None), "help": ("bool", 0, None),
    "kubeconfig": ("string", 0, None), "master": ("string", 0, None),
    "kube-api-burst": ("int", 0, None), "kube-api-qps": ("float", 0, None),
    "kube-api-content-type": ("string", 0, None),
    "leader-elect": ("bool", 0, None), "leader-elect-lease-duration": ("duration", 0, None),
    "leader-elect-renew-deadline": ("duration", 0, None),
    "leader-elect-retry-period": ("duration", 0, None),
    "leader-elect-resource-lock": ("string", 0, None),
    "leader-elect-resource-name": ("string", 0, None),
    "leader-elect-resource-namespace": ("string", 0, None),
    "feature-gates": ("map", 0, None), "profiling": ("bool", 0, None),
    "contention-profiling": ("bool", 0, None),
    "secure-port": ("int", 0, None), "bind-address": ("string", 0, None),
    "cert-dir": ("string", 0, None), "tls-cert-file": ("string", 0, None),
    "tls-private-key-file": ("string", 0, None), "tls-cipher-suites": ("strings", 0, None),
    "tls-min-version": ("string", 0, None), "tls-sni-cert-key": ("strings", 0, None),
    "http2-max-streams-per-connection": ("int", 0, None),
    "permit-address-sharing": ("bool", 0, None), "permit-port-sharing": ("bool", 0, None),
    "authentication-kubeconfig": ("string", 0, None),
    "authentication-skip-lookup": ("bool", 0, None),
    "authentication-token-webhook-cache-ttl": ("duration", 0, None),
    "authentication-tolerate-lookup-failure": ("bool", 0, None),
    "client-ca-file": ("string", 0, None),
    "requestheader-allowed-names": ("strings", 0, None),
    "requestheader-client-ca-file": ("string", 0, None),
    "requestheader-extra-headers-prefix": ("strings", 0, None),
    "requestheader-group-headers": ("strings", 0, None),
    "requestheader-username-headers": ("strings", 0, None),
    "authorization-always-allow-paths": ("strings", 0, None),
    "authorization-kubeconfig": ("string", 0, None),
    "authorization-webhook-cache-authorized-ttl": ("duration", 0, None),
    "authorization-webhook-cache-unauthorized-ttl": ("duration", 0, None),
    "show-hidden-metrics-for-version": ("string", 0, None),
    "allow-metric-labels": ("strings", 0, None), "disabled-metrics": ("strings", 0, None),
    # the insecure HTTP port, gone in 1.24
    "port": ("int", 0, 24), "address": ("string", 0, 24),
}
_KCM = {
    "allocate-node-cidrs": ("bool", 0, None), "cidr-allocator-type": ("string", 0, None),
    "cloud-config": ("string", 0, None), "cloud-provider": ("string", 0, None),
    "cluster-cidr": ("string", 0, None), "cluster-name": ("string", 0, None),
    "configure-cloud-routes": ("bool", 0, None), "controller-start-interval": ("duration", 0, None),
    "controllers": ("strings", 0, None), "external-cloud-volume-plugin": ("string", 0, None),
    "min-resync-period": ("duration", 0, None), "node-monitor-period": ("duration", 0, None),
    "route-reconciliation-period": ("duration", 0, None),
    "use-service-account-credentials": ("bool", 0, None),
    "concurrent-deployment-syncs": ("int", 0, None), "concurrent-endpoint-syncs": ("int", 0, None),
    "concurrent-gc-syncs": ("int", 0, None), "concurrent-namespace-syncs": ("int", 0, None),
    "concurrent-replicaset-syncs": ("int", 0, None), "concurrent-rc-syncs": ("int", 0, None),
    "concurrent-resource-quota-syncs": ("int", 0, None),
    "concurrent-service-endpoint-syncs": ("int", 0, None),
    "concurrent-serviceaccount-token-syncs": ("int", 0, None),
    "concurrent-statefulset-syncs": ("int", 0, None), "concurrent-ttl-after-finished-syncs": ("int", 0, None),
    "concurrent-cron-job-syncs": ("int", 0, None), "concurrent-job-syncs": ("int", 0, None),
    "concurrent-daemonset-syncs": ("int", 0, None), "concurrent-horizontal-pod-autoscaler-syncs": ("int", 0, None),
    "concurrent-service-syncs": ("int", 0, None),
    "cluster-signing-cert-file": ("string", 0, None), "cluster-signing-key-file": ("string", 0, None),
    "cluster-signing-duration": ("duration", 19, None),
    "experimental-cluster-signing-duration": ("duration", 0, 25),
    "cluster-signing-kubelet-serving-cert-file": ("string", 19, None),
    "cluster-signing-kubelet-serving-key-file": ("string", 19, None),
    "cluster-signing-kubelet-client-cert-file": ("string", 19, None),
    "cluster-signing-kubelet-client-key-file": ("string", 19, None),
    "cluster-signing-kube-apiserver-client-cert-file": ("string", 19, None),
    "cluster-signing-kube-apiserver-client-key-file": ("string", 19, None),
    "cluster-signing-legacy-unknown-cert-file": ("string", 19, None),
    "cluster-signing-legacy-unknown-key-file": ("string", 19, None),
    "horizontal-pod-autoscaler-sync-period": ("duration", 0, None),
    "horizontal-pod-autoscaler-use-rest-clients": ("bool", 0, 24),
    "horizontal-pod-autoscaler-cpu-initialization-period": ("duration", 0, None),
    "horizontal-pod-autoscaler-downscale-stabilization": ("duration", 0, None),
    "horizontal-pod-autoscaler-initial-readiness-delay": ("duration", 0, None),
    "horizontal-pod-autoscaler-tolerance": ("float", 0, None),
    "horizontal-pod-autoscaler-upscale-delay": ("duration", 0, 21),
    "horizontal-pod-autoscaler-downscale-delay": ("duration", 0, 21),
    "node-cidr-mask-size": ("int", 0, None), "node-cidr-mask-size-ipv4": ("int", 17, None),
    "node-cidr-mask-size-ipv6": ("int", 17, None),
    "service-cluster-ip-range": ("string", 0, None),
    "node-eviction-rate": ("float", 0, None), "secondary-node-eviction-rate": ("float", 0, None),
    "large-cluster-size-threshold": ("int", 0, None), "unhealthy-zone-threshold": ("float", 0, None),
    "node-monitor-grace-period": ("duration", 0, None), "node-startup-grace-period": ("duration", 0, None),
    "pod-eviction-timeout": ("duration", 0, 27), "enable-taint-manager": ("bool", 0, 27),
    "terminated-pod-gc-threshold": ("int", 0, None),
    "enable-dynamic-provisioning": ("bool", 0, None), "enable-hostpath-provisioner": ("bool", 0, None),
    "flex-volume-plugin-dir": ("string", 0, None),
    "pv-recycler-increment-timeout-nfs": ("int", 0, None),
    "pv-recycler-minimum-timeout-hostpath": ("int", 0, None),
    "pv-recycler-minimum-timeout-nfs": ("int", 0, None),
    "pv-recycler-pod-template-filepath-hostpath": ("string", 0, None),
    "pv-recycler-pod-template-filepath-nfs": ("string", 0, None),
    "pv-recycler-timeout-increment-hostpath": ("int", 0, None),
    "root-ca-file": ("string", 0, None), "service-account-private-key-file": ("string", 0, None),
    "enable-garbage-collector": ("bool", 0, None), "namespace-sync-period": ("duration", 0, None),
    "disable-attach-detach-reconcile-sync": ("bool", 0, None),
    "attach-detach-reconcile-sync-period": ("duration", 0, None),
    "endpoint-updates-batch-period": ("duration", 0, None),
    "endpointslice-updates-batch-period": ("duration", 0, None),
    "max-endpoints-per-slice": ("int", 0, None),
    "mirroring-concurrent-service-endpoint-syncs": ("int", 0, None),
    "mirroring-endpointslice-updates-batch-period": ("duration", 0, None),
    "mirroring-max-endpoints-per-subset": ("int", 0, None),
    "volume-host-allow-local-loopback": ("bool", 0, None),
    "volume-host-cidr-denylist": ("strings", 0, None),
    "enable-leader-migration": ("bool", 21, None), "leader-migration-config": ("string", 21, None),
    "deleting-pods-burst": ("int", 0, 22), "deleting-pods-qps": ("float", 0, 22),
    "register-retry-count": ("int", 0, 22),
    "insecure-experimental-approve-all-kubelet-csrs-for-group": ("string", 0, 12),
    "resource-quota-sync-period": ("duration", 0, None),
    "pvclaimbinder-sync-period": ("duration", 0, None),
    "daemonset-lookup-cache-size": ("int", 0, 12),
    "node-sync-period": ("duration", 0, 22),
    "openapi-config": ("string", 0, None),
}
_SCHED = {
    "config": ("string", 0, None), "write-config-to": ("string", 0, None),
    "pod-max-in-unschedulable-pods-duration": ("duration", 26, None),
    "algorithm-provider": ("string", 0, 23), "policy-config-file": ("string", 0, 23),
    "policy-configmap": ("string", 0, 23), "policy-configmap-namespace": ("string", 0, 23),
    "use-legacy-policy-config": ("bool", 0, 23), "scheduler-name": ("string", 0, 23),
    "hard-pod-affinity-symmetric-weight": ("int", 0, 23),
    "lock-object-name": ("string", 0, 23), "lock-object-namespace": ("string", 0, 23),
}
SHORTHANDS = {"v": "v", "h": "help"}


def flag_table(name, minor):
    table = dict(_COMMON)
    table.update(_KCM if name == "kube-controller-manager" else _SCHED)
    return {k: t for k, (t, since, removed) in table.items()
            if minor >= since and (removed is None or minor < removed)}


class FlagError(Exception):
    pass


def parse_go_duration(s):
    """Go's time.ParseDuration, returning seconds."""
    if s in ("0", "+0", "-0"):
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
             "s": 1.0, "m": 60.0, "h": 3600.0}
    orig, sign, total = s, 1, 0.0
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        raise FlagError('time: invalid duration "%s"' % orig)
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        if i == 0:
            raise FlagError('time: invalid duration "%s"' % orig)
        num, s = s[:i], s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if not unit:
            raise FlagError('time: missing unit in duration "%s"' % orig)
        if unit not in units:
            raise FlagError('time: unknown unit "%s" in duration "%s"' % (unit, orig))
        try:
            total += float(num) * units[unit]
        except ValueError:
            raise FlagError('time: invalid duration "%s"' % orig)
    return sign * total


def convert(name, typ, value):
    try:
        if typ == "bool":
            v = value.lower() if value in ("TRUE", "True", "FALSE", "False") else value
            if v in ("1", "t", "T", "true"):
                return True
            if v in ("0", "f", "F", "false"):
                return False
            raise FlagError('strconv.ParseBool: parsing "%s": invalid syntax' % value)
        if typ == "int":
            try:
                return int(value, 10)
            except ValueError:
                raise FlagError('strconv.ParseInt: parsing "%s": invalid syntax' % value)
        if typ == "float":
            try:
                return float(value)
            except ValueError:
                raise FlagError('strconv.ParseFloat: parsing "%s": invalid syntax' % value)
        if typ == "duration":
            return parse_go_duration(value)
        if typ == "strings":
            return [x for x in value.split(",")] if value else []
        if typ == "map":
            out = {}
            for kv in filter(None, value.split(",")):
                k, eq, v = kv.partition("=")
                if not eq:
                    raise FlagError("missing bool value for %s" % k)
                out[k.strip()] = v.strip()
            return out
        return value
    except FlagError as e:
        raise FlagError('invalid argument "%s" for "--%s" flag: %s' % (value, name, e))


def parse_flags(argv, table):
    """pflag semantics: --name=value, --name value, --bool, -v=2, -h."""
    flags, args, i = {}, [], 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            args.extend(argv[i:])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if not name or name.startswith("-") or name.startswith("="):
                raise FlagError("bad flag syntax: %s" % a)
        elif a.startswith("-") and len(a) > 1:
            short, eq, value = a[1:].partition("=")
            if short[:1] not in SHORTHANDS:
                raise FlagError("unknown shorthand flag: '%s' in %s" % (short[:1], a))
            name = SHORTHANDS[short[:1]]
            if len(short) > 1 and not eq:
                eq, value = "=", short[1:]
        else:
            args.append(a)
            continue
        typ = table.get(name)
        if typ is None:
            raise FlagError("unknown flag: --%s" % name)
        if typ == "version":
            flags[name] = value if eq else "true"
            continue
        if typ == "bool" and not eq:
            flags[name] = True
            continue
        if not eq:
            if i >= len(argv):
                raise FlagError("flag needs an argument: --%s" % name)
            value = argv[i]
            i += 1
        flags[name] = convert(name, typ, value)
    return flags, args


def usage(name, table):
    lines = ["Usage:", "  %s [flags]" % name, "", "Flags:"]
    for k in sorted(table):
        if k in ("help", "version"):
            continue
        t = table[k]
        lines.append("      --%s%s" % (k, "" if t == "bool" else " " + {"strings": "strings",
                                                                           "map": "mapStringBool"}.get(t, t)))
    lines.append("  -h, --help    help for %s" % name)
    lines.append("      --version version[=true]    Print version information and quit")
    return "\n".join(lines) + "\n"


def resolve_identity():
    """The component's name: built in, or from how it was called."""
    base = os.path.basename(sys.argv[0])
    if base in COMPONENTS:
        return base
    try:
        import standin_build
        return standin_build.NAME
    except ImportError:
        return "kube-controller-manager"


def resolve_version():
    v = os.environ.get("KUBE_STANDIN_VERSION")
    if not v:
        exe = os.path.abspath(sys.argv[0])
        for cand in (exe + ".version", os.path.realpath(exe) + ".version"):
            try:
                with open(cand) as f:
                    v = f.read().strip()
                    break
            except OSError:
                pass
    if not v:
        try:
            import standin_build
            v = standin_build.VERSION
        except ImportError:
            v = DEFAULT_VERSION
    return "v" + v.lstrip("v")


def minor_of(version):
    try:
        return int(version.lstrip("v").split(".")[1])
    except (IndexError, ValueError):
        return 28


def fail(msg):
    sys.stderr.write("Error: %s\n" % msg)
    sys.stderr.flush()
    sys.exit(1)


# ------------------------------------------------------------------ leader election

class Elector:
    JITTER = 1.2  # client-go's leaderelection.JitterFactor

    def __init__(self, comp, client, ns, name, lease, renew, retry, lock):
        self.comp, self.client, self.ns, self.name = comp, client, ns, name
        self.lease, self.renew, self.retry, self.lock = lease, renew, retry, lock
        self.identity = "%s_%s" % (socket.gethostname(), uuid.uuid1())
        self.leader = False
        self.observed = None
        self.observed_time = 0.0
        self.src = "leaderelection.go:250"

    def path(self):
        return "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" % (self.ns, self.name)

    def record(self, acquire, transitions):
        now = common.now_micro()
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease),
                "acquireTime": acquire or now, "renewTime": now,
                "leaseTransitions": transitions}

    def write_endpoints(self, rec):
        """The old endpoints lock's annotation, for the *leases multilocks."""
        if not self.lock.startswith("endpoints"):
            return
        ann = json.dumps({"holderIdentity": rec["holderIdentity"],
                          "leaseDurationSeconds": rec["leaseDurationSeconds"],
                          "acquireTime": rec["acquireTime"][:19] + "Z",
                          "renewTime": rec["renewTime"][:19] + "Z",
                          "leaderTransitions": rec["leaseTransitions"]}, separators=(",", ":"))
        p = "/api/v1/namespaces/%s/endpoints/%s" % (self.ns, self.name)
        try:
            ep = self.client.request("GET", p)
        except common.ApiError as e:
            if e.code != 404:
                raise
            ep = {"metadata": {"name": self.name, "namespace": self.ns}}
            ep["metadata"]["annotations"] = {"control-plane.alpha.kubernetes.io/leader": ann}
            self.client.request("POST", "/api/v1/namespaces/%s/endpoints" % self.ns, ep)
            return
        ep["metadata"].setdefault("annotations", {})["control-plane.alpha.kubernetes.io/leader"] = ann
        self.client.request("PUT", p, ep)

    def try_acquire_or_renew(self):
        """client-go's tryAcquireOrRenew: True when we hold the lease."""
        now = time.monotonic()
        try:
            cur = self.client.request("GET", self.path())
        except common.ApiError as e:
            if e.code != 404:
                raise
            rec = self.record(None, 0)
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.ns}, "spec": rec}
            self.client.request("POST", "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % self.ns, body)
            self.observed, self.observed_time = rec, now
            self.write_endpoints(rec)
            return True
        spec = cur.get("spec") or {}
        if spec != self.observed:
            self.observed, self.observed_time = spec, now
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease
        if holder and holder != self.identity and self.observed_time + duration > now:
            return False
        if holder == self.identity:
            rec = self.record(spec.get("acquireTime"), spec.get("leaseTransitions") or 0)
        else:
            rec = self.record(None, (spec.get("leaseTransitions") or 0) + 1)
        cur["spec"] = rec
        self.client.request("PUT", self.path(), cur)
        self.observed, self.observed_time = rec, now
        self.write_endpoints(rec)
        return True

    def jittered(self):
        return self.retry + random.random() * self.JITTER * self.retry

    def run(self, on_lost):
        common.info(self.src, "attempting to acquire leader lease %s/%s..." % (self.ns, self.name))
        while True:
            try:
                ok = self.try_acquire_or_renew()
            except (common.ApiError, common.TransportError) as e:
                common.error("leaderelection.go:332", "error retrieving resource lock %s/%s: %s"
                             % (self.ns, self.name, e))
                ok = False
            if ok:
                break
            time.sleep(self.jittered())
        self.leader = True
        common.info("leaderelection.go:260", "successfully acquired lease %s/%s" % (self.ns, self.name))
        common.info("event.go:307", '"Event occurred" object="%s/%s" fieldPath="" kind="Lease" '
                    'apiVersion="coordination.k8s.io/v1" type="Normal" reason="LeaderElection" '
                    'message="%s became leader"' % (self.ns, self.name, self.identity))
        # renew: every retry period; give up when no renewal succeeded within the deadline
        last_ok = time.monotonic()
        while True:
            time.sleep(self.retry)
            try:
                if self.try_acquire_or_renew():
                    last_ok = time.monotonic()
                    continue
            except (common.ApiError, common.TransportError) as e:
                common.error("leaderelection.go:369", "Failed to update lock: %s" % e)
            if time.monotonic() - last_ok >= self.renew:
                self.leader = False
                common.info("leaderelection.go:285", "failed to renew lease %s/%s: timed out waiting "
                            "for the condition" % (self.ns, self.name))
                on_lost()
                return


# ------------------------------------------------------------------ HTTPS endpoint

class Authz:
    """Delegated authentication/authorization of the secure port."""

    def __init__(self, authz_client, always_allow, ttl_allowed, ttl_denied):
        self.client = authz_client
        self.always = always_allow
        self.ttl = (ttl_allowed, ttl_denied)
        self.cache = {}
        self.lock = threading.Lock()

    def review(self, user, groups, path, verb):
        """-> (allowed, reason); raises ApiError/TransportError when the review fails."""
        key = (user, tuple(groups), path, verb)
        with self.lock:
            hit = self.cache.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1], hit[2]
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups,
                         "nonResourceAttributes": {"path": path, "verb": verb}}}
        r = self.client.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)
        st = r.get("status") or {}
        allowed, reason = bool(st.get("allowed")), st.get("reason") or ""
        with self.lock:
            self.cache[key] = (time.monotonic() + self.ttl[0 if allowed else 1], allowed, reason)
        return allowed, reason


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def reply(self, code, body, ctype):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if state["verbosity"] >= 2:
                common.info("httplog.go:132", '"HTTP" verb="%s" URI="%s" resp=%d' % (
                    self.command, self.path, code))

        def do_GET(self):
            path = self.path.split("?")[0]
            verb = self.command.lower()
            authz = state["authz"]
            if path not in authz.always:
                ident = common.peer_identity(self.connection) if state["client_ca"] else None
                if ident:
                    user, groups = ident[0], ident[1] + ["system:authenticated"]
                else:
                    user, groups = "system:anonymous", ["system:unauthenticated"]
                if authz.client is None:
                    allowed, reason = False, ""
                else:
                    try:
                        allowed, reason = authz.review(user, groups, path, verb)
                    except (common.ApiError, common.TransportError) as e:
                        common.error("authorization.go:76", 'Authorization error (user=%s, verb=%s, '
                                     'resource=, subresource=) err="%s"' % (user, verb, e))
                        return self.reply(500, 'Internal Server Error: "%s": %s\n' % (self.path, e),
                                          "text/plain; charset=utf-8")
                if not allowed:
                    msg = common.forbidden_message(user, verb, path=path)
                    if reason:
                        msg += ": " + reason
                    common.info("authorization.go:73", 'Forbidden: "%s", Reason: "%s"' % (
                        path, reason or "no RBAC policy matched"))
                    st = common.status(403, "Forbidden", msg, {})
                    return self.reply(403, json.dumps(st, indent=2) + "\n", "application/json")
            if path in ("/healthz", "/livez", "/readyz"):
                return self.reply(200, "ok", "text/plain; charset=utf-8")
            if path == "/metrics":
                return self.reply(200, metrics(state), "text/plain; version=0.0.4; charset=utf-8")
            return self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

    return Handler


def metrics(state):
    name, el = state["name"], state.get("elector")
    lines = [
        "# HELP leader_election_master_status [ALPHA] Gauge of if the reporting system is master "
        "of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used "
        "to identify the lease. Please make sure to group by name.",
        "# TYPE leader_election_master_status gauge",
    ]
    if el is not None:
        lines.append('leader_election_master_status{name="%s"} %d' % (el.name, 1 if el.leader else 0))
    v = state["version"].lstrip("v").split(".")
    lines += [
        "# HELP kubernetes_build_info [ALPHA] A metric with a constant '1' value labeled by major, "
        "minor, git version, git commit, git tree state, build date, Go version, and compiler from "
        "which Kubernetes was built, and platform on which it is running.",
        "# TYPE kubernetes_build_info gauge",
        'kubernetes_build_info{build_date="2023-01-01T00:00:00Z",compiler="gc",git_commit="standin",'
        'git_tree_state="clean",git_version="%s",go_version="go1.20",major="%s",minor="%s",'
        'platform="linux/amd64"} 1' % (state["version"], v[0], v[1] if len(v) > 1 else "0"),
        "# HELP process_start_time_seconds [ALPHA] Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        "process_start_time_seconds %.2f" % state["started"],
        "# HELP running_managed_controllers [ALPHA] Indicates where instances of a controller are "
        "currently running",
        "# TYPE running_managed_controllers gauge",
        'running_managed_controllers{manager="%s",name="standin"} %d' % (
            name, 1 if (el is None or el.leader) else 0),
    ]
    return "\n".join(lines) + "\n"


def serving_context(flags, client_ca, name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = flags.get("tls-cert-file"), flags.get("tls-private-key-file")
    if not cert:
        # The real one generates a self-signed certificate in memory.
        import subprocess
        import tempfile
        d = tempfile.mkdtemp(prefix=name + "-")
        cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                        "-subj", "/CN=localhost@%d" % int(time.time()), "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        common.info("serving.go:348", "Generated self-signed cert in-memory")
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        fail("failed to load serving certificate/key %s/%s: %s" % (cert, key, getattr(e, "strerror", None)
                                                                   or common.go_tls_error(e)))
    finally:
        if not flags.get("tls-cert-file"):
            for p in (cert, key):
                os.unlink(p)
            os.rmdir(os.path.dirname(cert))
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_ca_from_cluster(flags, name):
    """Delegated authentication: the client CA comes from --client-ca-file or
    from the extension-apiserver-authentication configmap."""
    if flags.get("client-ca-file"):
        with open(flags["client-ca-file"]) as f:
            return f.read()
    kc = flags.get("authentication-kubeconfig")
    if not kc:
        common.warn("authentication.go:339", "No authentication-kubeconfig provided in order to lookup "
                    "client-ca-file in configmap/extension-apiserver-authentication in kube-system, so "
                    "client certificate authentication won't work.")
        return None
    if flags.get("authentication-skip-lookup"):
        return None
    try:
        c = common.Client(kc, user_agent=name + "/authentication")
        cm = c.request("GET", "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication")
        return (cm.get("data") or {}).get("client-ca-file")
    except (common.ApiError, common.TransportError, common.KubeconfigError) as e:
        common.warn("authentication.go:289", "Unable to get configmap/extension-apiserver-authentication "
                    "in kube-system.  Usually fixed by 'kubectl create rolebinding -n kube-system "
                    "ROLEBINDING_NAME --role=extension-apiserver-authentication-reader "
                    "--serviceaccount=YOUR_NS:YOUR_SA'")
        common.warn("authentication.go:290", "Error looking up in-cluster authentication configuration: %s" % e)
        common.warn("authentication.go:292", "Continuing without authentication configuration. This may "
                    "treat all requests as anonymous.")
        return None


def wait_apiserver(client, name):
    """As the real controller manager: up to 10s for /healthz, then give up."""
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        try:
            client.request("GET", "/healthz?timeout=32s")
            return
        except common.TransportError as e:
            last = str(e)
            if "x509" in last or "tls:" in last:
                break
        except common.ApiError as e:
            last = "an error on the server (\"%s\") has prevented the request from succeeding" % e
        time.sleep(1)
    common.error("%s:243" % COMPONENTS[name]["src"], '"Error building controller context" err="failed to '
                 'wait for apiserver being healthy: timed out waiting for the condition: failed to get '
                 'apiserver /healthz status: %s"' % (last or "timed out").replace('"', '\\"'))
    sys.exit(1)


def main():
    name = resolve_identity()
    comp = COMPONENTS[name]
    version = resolve_version()
    minor = minor_of(version)
    table = flag_table(name, minor)
    try:
        flags, args = parse_flags(sys.argv[1:], table)
    except FlagError as e:
        # component-base's cli.Run: the usage first, the error as the last line
        sys.stderr.write("%s\nError: %s\n" % (usage(name, table), e))
        sys.exit(1)
    if flags.get("help"):
        sys.stdout.write(usage(name, table))
        sys.exit(0)
    if "version" in flags and flags["version"] not in ("false", "False", "0"):
        if flags["version"] == "raw":
            v = version.lstrip("v").split(".")
            print(json.dumps({"major": v[0], "minor": v[1], "gitVersion": version}))
        else:
            print("Kubernetes %s" % version)
        sys.exit(0)
    if args:
        fail('"%s" does not take any arguments, got %s' % (name, json.dumps(args)))
    if flags.get("bind-address") is not None:
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in flags["bind-address"] else socket.AF_INET,
                             flags["bind-address"])
        except OSError:
            fail('invalid argument "%s" for "--bind-address" flag: failed to parse IP: "%s"'
                 % (flags["bind-address"], flags["bind-address"]))
    lease = flags.get("leader-elect-lease-duration", 15.0)
    renew = flags.get("leader-elect-renew-deadline", 10.0)
    retry = flags.get("leader-elect-retry-period", 2.0)
    lock = flags.get("leader-elect-resource-lock", "leases")
    locks = ["leases"] + (["endpoints", "configmaps", "endpointsleases", "configmapsleases"]
                          if minor < 24 else [])
    if lock not in locks:
        fail('invalid lock-config: lock type "%s" is not supported' % lock if minor < 24 else
             '"%s" is not a valid resource lock (only "leases" is supported)' % lock)
    state = {"name": name, "version": version, "started": time.time(),
             "verbosity": flags.get("v", 0)}
    common.info("serving.go:380", "%s version %s (stand-in for the kcmrun lab)" % (name, version))

    kubeconfig = flags.get("kubeconfig")
    if not kubeconfig:
        fail("invalid configuration: no configuration has been provided, try setting KUBERNETES_MASTER "
             "environment variable")
    try:
        client = common.Client(kubeconfig, user_agent="%s/%s (linux/amd64) leader-election" % (name, version))
    except common.KubeconfigError as e:
        fail(str(e))

    client_ca = client_ca_from_cluster(flags, name)
    state["client_ca"] = client_ca
    authz_client = None
    if flags.get("authorization-kubeconfig"):
        try:
            authz_client = common.Client(flags["authorization-kubeconfig"], user_agent=name + "/authorization")
        except common.KubeconfigError as e:
            fail(str(e))
    else:
        common.warn("authorization.go:226", "No authorization-kubeconfig provided, so SubjectAccessReview "
                    "of authorization tokens won't work.")
    state["authz"] = Authz(authz_client,
                           set(flags.get("authorization-always-allow-paths", ["/healthz", "/readyz", "/livez"])),
                           flags.get("authorization-webhook-cache-authorized-ttl", 10.0),
                           flags.get("authorization-webhook-cache-unauthorized-ttl", 10.0))

    port = flags.get("secure-port", comp["port"])
    if port:
        ctx = serving_context(flags, client_ca, name)
        bind = flags.get("bind-address", "0.0.0.0")
        try:
            srv = common.TLSServer((bind, port), make_handler(state), ctx)
        except OSError as e:
            fail("failed to create listener: failed to listen on %s:%d: listen tcp %s:%d: bind: %s"
                 % (bind, port, bind, port, (e.strerror or str(e)).lower()))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        common.info("secure_serving.go:210", "Serving securely on %s:%d" % (bind, port))

    wait_apiserver(client, name)

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    if flags.get("leader-elect", True):
        if not lease > renew:
            fail("leaseDuration must be greater than renewDeadline")
        if not renew > Elector.JITTER * retry:
            fail("renewDeadline must be greater than retryPeriod*JitterFactor")
        el = Elector(comp, client, flags.get("leader-elect-resource-namespace", "kube-system"),
                     flags.get("leader-elect-resource-name", comp["lease"]), lease, renew, retry, lock)
        state["elector"] = el

        def lost():
            common.klog("F", "%s:320" % comp["src"], "leaderelection lost")
            os._exit(1)
        el.run(lost)
    else:
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
