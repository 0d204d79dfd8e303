#!/usr/bin/python3 -u
"""kube-apiserver STAND-IN for the kcmrun lab (not the real kube-apiserver).

What a playbook can observe behaves like the real one: TLS with a serving
certificate from the cluster CA; client certificates verified against
--client-ca-file (CN -> user, O -> groups); RBAC (system:masters may do
anything, anonymous gets a 403 Status with the RBAC authorizer's words);
/healthz, /livez, /readyz, /version, discovery; core/v1 namespaces,
endpoints, configmaps, secrets, serviceaccounts, events;
coordination.k8s.io/v1 leases; rbac.authorization.k8s.io/v1 (cluster)roles
and (cluster)rolebindings; authorization.k8s.io/v1 subjectaccessreviews.
Objects carry uid, resourceVersion and creationTimestamp; a stale
resourceVersion on update is a 409 Conflict. State lives in a JSON file and
survives a restart.

Known differences: a client certificate from an unknown CA fails the TLS
handshake (the real server answers 401); no watch, no server-side apply.
"""
import argparse
import copy
import json
import os
import random
import string
import ssl
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import standin_common as common  # noqa: E402

SRC = "httplog.go:132"

# (group, version, plural) -> kind, namespaced, verbs
RESOURCES = {}


def _res(group, version, plural, kind, namespaced, singular, verbs=None, short=None):
    RESOURCES[(group, plural)] = {
        "group": group, "version": version, "plural": plural, "kind": kind,
        "namespaced": namespaced, "singular": singular, "short": short or [],
        "verbs": verbs or ["create", "delete", "deletecollection", "get", "list",
                           "patch", "update", "watch"],
    }


_res("", "v1", "namespaces", "Namespace", False, "namespace", short=["ns"],
     verbs=["create", "delete", "get", "list", "patch", "update", "watch"])
_res("", "v1", "endpoints", "Endpoints", True, "endpoints", short=["ep"])
_res("", "v1", "configmaps", "ConfigMap", True, "configmap", short=["cm"])
_res("", "v1", "secrets", "Secret", True, "secret")
_res("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", short=["sa"])
_res("", "v1", "events", "Event", True, "event", short=["ev"])
_res("coordination.k8s.io", "v1", "leases", "Lease", True, "lease")
_res("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, "clusterrole")
_res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False,
     "clusterrolebinding")
_res("rbac.authorization.k8s.io", "v1", "roles", "Role", True, "role")
_res("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, "rolebinding")
_res("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False,
     "subjectaccessreview", verbs=["create"])
_res("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
     "selfsubjectaccessreview", verbs=["create"])

# Resources whose update creates a missing object (as their real strategies do).
CREATE_ON_UPDATE = {("", "endpoints")}
REVIEWS = {("authorization.k8s.io", "subjectaccessreviews"),
           ("authorization.k8s.io", "selfsubjectaccessreviews")}


def gv(group, version):
    return "%s/%s" % (group, version) if group else version


def _rule(verbs, groups=None, resources=None, names=None, urls=None):
    r = {"verbs": verbs}
    if urls is not None:
        r["nonResourceURLs"] = urls
    else:
        r["apiGroups"] = groups
        r["resources"] = resources
        if names:
            r["resourceNames"] = names
    return r


# The bootstrap RBAC policy the real apiserver creates at start, reduced to
# what the lab's components and playbooks touch.
BOOTSTRAP_CLUSTERROLES = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), _rule(["*"], urls=["*"])],
    "system:discovery": [_rule(["get"], urls=["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                                              "/livez", "/openapi", "/openapi/*", "/readyz",
                                              "/version", "/version/"])],
    "system:public-info-viewer": [_rule(["get"], urls=["/healthz", "/livez", "/readyz",
                                                       "/version", "/version/"])],
    "system:basic-user": [_rule(["create"], ["authorization.k8s.io"],
                                ["selfsubjectaccessreviews", "selfsubjectrulesreviews"])],
    "system:auth-delegator": [_rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
                              _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"])],
    "system:kube-controller-manager": [
        # Without the review resources, as in the clusters the procedure was
        # written for (kubeadm#1285): its auth-delegator binding exists
        # because of that, and the lab shows the 500 it fixes.
        _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        _rule(["create"], ["coordination.k8s.io"], ["leases"]),
        _rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-controller-manager"]),
        _rule(["create"], [""], ["endpoints"]),
        _rule(["get", "update"], [""], ["endpoints"], ["kube-controller-manager"]),
        _rule(["create", "delete", "get", "update"], [""], ["secrets", "serviceaccounts"]),
        _rule(["get", "list", "watch"], [""], ["namespaces", "configmaps"]),
    ],
    "system:kube-scheduler": [
        _rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
        _rule(["create"], ["coordination.k8s.io"], ["leases"]),
        _rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-scheduler"]),
        _rule(["create"], [""], ["endpoints"]),
        _rule(["get", "update"], [""], ["endpoints"], ["kube-scheduler"]),
        _rule(["get", "list", "watch"], [""], ["namespaces", "configmaps"]),
        _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
        _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    ],
}
BOOTSTRAP_CLUSTERROLEBINDINGS = {
    "cluster-admin": ("cluster-admin", [("Group", "system:masters")]),
    "system:discovery": ("system:discovery", [("Group", "system:authenticated")]),
    "system:public-info-viewer": ("system:public-info-viewer",
                                  [("Group", "system:authenticated"),
                                   ("Group", "system:unauthenticated")]),
    "system:basic-user": ("system:basic-user", [("Group", "system:authenticated")]),
    "system:kube-controller-manager": ("system:kube-controller-manager",
                                       [("User", "system:kube-controller-manager")]),
    "system:kube-scheduler": ("system:kube-scheduler", [("User", "system:kube-scheduler")]),
}
# kube-system Role/RoleBinding the real bootstrap policy has, so components can
# read the client CA for their delegated authentication.
BOOTSTRAP_ROLES = {
    "extension-apiserver-authentication-reader": [
        _rule(["get", "list", "watch"], [""], ["configmaps"],
              ["extension-apiserver-authentication"])],
}
BOOTSTRAP_ROLEBINDINGS = {
    "system::extension-apiserver-authentication-reader": (
        "extension-apiserver-authentication-reader",
        [("User", "system:kube-controller-manager"), ("User", "system:kube-scheduler")]),
}
BOOTSTRAP_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"]


class HTTPError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.status = common.status(code, reason, message, details)


def details(res, name=None):
    d = {}
    if name:
        d["name"] = name
    if res["group"]:
        d["group"] = res["group"]
    d["kind"] = res["plural"]
    return d


class Store:
    def __init__(self, path):
        self.path = path
        self.lock = threading.RLock()
        self.rv = 0
        self.objects = {}
        if path and os.path.exists(path):
            with open(path) as f:
                st = json.load(f)
            self.rv = st.get("resourceVersion", 0)
            self.objects = st.get("objects", {})

    @staticmethod
    def key(res, ns, name):
        return "%s/%s/%s/%s" % (res["group"], res["plural"], ns or "", name)

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"resourceVersion": self.rv, "objects": self.objects}, f, indent=1,
                      sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def get(self, res, ns, name):
        return self.objects.get(self.key(res, ns, name))

    def list(self, res, ns):
        prefix = "%s/%s/" % (res["group"], res["plural"])
        if ns:
            prefix += ns + "/"
        return [copy.deepcopy(v) for k, v in sorted(self.objects.items()) if k.startswith(prefix)]

    def put(self, res, obj, fresh):
        md = obj["metadata"]
        if fresh:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = common.now_time()
        md["resourceVersion"] = self.next_rv()
        obj["kind"] = res["kind"]
        obj["apiVersion"] = gv(res["group"], res["version"])
        self.objects[self.key(res, md.get("namespace"), md["name"])] = obj
        self.save()
        return copy.deepcopy(obj)

    def delete(self, res, ns, name):
        obj = self.objects.pop(self.key(res, ns, name), None)
        self.save()
        return obj


def rbac_object(kind, name, rules=None, role=None, subjects=None, ns=None):
    md = {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
          "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
    if ns:
        md["namespace"] = ns
    o = {"metadata": md}
    if rules is not None:
        o["rules"] = rules
    if role is not None:
        o["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": role[0], "name": role[1]}
        o["subjects"] = [dict({"kind": k, "name": n},
                              **({"apiGroup": "rbac.authorization.k8s.io"} if k != "ServiceAccount" else {}))
                         for k, n in subjects]
    return o


def bootstrap(store, client_ca_pem):
    """Creates what the real apiserver creates at start, when missing."""
    R = lambda g, p: RESOURCES[(g, p)]  # noqa: E731
    rbac = "rbac.authorization.k8s.io"
    with store.lock:
        for ns in BOOTSTRAP_NAMESPACES:
            if not store.get(R("", "namespaces"), None, ns):
                store.put(R("", "namespaces"), {"metadata": {"name": ns},
                                                "spec": {"finalizers": ["kubernetes"]},
                                                "status": {"phase": "Active"}}, True)
        for name, rules in BOOTSTRAP_CLUSTERROLES.items():
            if not store.get(R(rbac, "clusterroles"), None, name):
                store.put(R(rbac, "clusterroles"), rbac_object("ClusterRole", name, rules=rules), True)
        for name, (role, subjects) in BOOTSTRAP_CLUSTERROLEBINDINGS.items():
            if not store.get(R(rbac, "clusterrolebindings"), None, name):
                store.put(R(rbac, "clusterrolebindings"),
                          rbac_object("ClusterRoleBinding", name, role=("ClusterRole", role),
                                      subjects=subjects), True)
        for name, rules in BOOTSTRAP_ROLES.items():
            if not store.get(R(rbac, "roles"), "kube-system", name):
                store.put(R(rbac, "roles"), rbac_object("Role", name, rules=rules, ns="kube-system"),
                          True)
        for name, (role, subjects) in BOOTSTRAP_ROLEBINDINGS.items():
            if not store.get(R(rbac, "rolebindings"), "kube-system", name):
                store.put(R(rbac, "rolebindings"),
                          rbac_object("RoleBinding", name, role=("Role", role), subjects=subjects,
                                      ns="kube-system"), True)
        # The configmap components read their client CA from (delegated authn).
        cm_res = R("", "configmaps")
        cm = store.get(cm_res, "kube-system", "extension-apiserver-authentication")
        data = {"client-ca-file": client_ca_pem}
        if not cm or cm.get("data") != data:
            obj = copy.deepcopy(cm) if cm else {"metadata": {"name": "extension-apiserver-authentication",
                                                             "namespace": "kube-system"}}
            obj["data"] = data
            store.put(cm_res, obj, cm is None)


# ---------------------------------------------------------------- RBAC

def _match(values, v):
    return "*" in values or v in values


def _url_match(patterns, path):
    for p in patterns:
        if p == "*" or p == path or (p.endswith("*") and path.startswith(p[:-1])):
            return True
    return False


def rule_allows(rule, attrs):
    if not _match(rule.get("verbs", []), attrs["verb"]):
        return False
    if attrs.get("path") is not None:
        return _url_match(rule.get("nonResourceURLs") or [], attrs["path"])
    if rule.get("nonResourceURLs"):
        return False
    if not _match(rule.get("apiGroups") or [], attrs["group"]):
        return False
    res = attrs["resource"] + ("/" + attrs["subresource"] if attrs.get("subresource") else "")
    if not _match(rule.get("resources") or [], res):
        return False
    names = rule.get("resourceNames") or []
    return not names or (attrs.get("name") in names)


def _subject_matches(s, user, groups, ns):
    kind = s.get("kind")
    if kind == "User":
        return s.get("name") == user
    if kind == "Group":
        return s.get("name") in groups
    if kind == "ServiceAccount":
        return user == "system:serviceaccount:%s:%s" % (s.get("namespace") or ns, s.get("name"))
    return False


def authorize(store, user, groups, attrs):
    """-> (allowed, reason), the RBAC authorizer's decision."""
    rbac = "rbac.authorization.k8s.io"
    with store.lock:
        crs, rs = RESOURCES[(rbac, "clusterroles")], RESOURCES[(rbac, "roles")]
        bindings = [(b, None) for b in store.list(RESOURCES[(rbac, "clusterrolebindings")], None)]
        if attrs.get("namespace"):
            bindings += [(b, attrs["namespace"]) for b in
                         store.list(RESOURCES[(rbac, "rolebindings")], attrs["namespace"])]
        for b, ns in bindings:
            if not any(_subject_matches(s, user, groups, ns) for s in b.get("subjects") or []):
                continue
            ref = b.get("roleRef") or {}
            if ref.get("kind") == "Role" and ns:
                role = store.get(rs, ns, ref.get("name"))
            else:
                role = store.get(crs, None, ref.get("name"))
            if not role:
                continue
            for rule in role.get("rules") or []:
                if rule_allows(rule, attrs):
                    how = ("RoleBinding \"%s/%s\"" % (ns, b["metadata"]["name"]) if ns
                           else "ClusterRoleBinding \"%s\"" % b["metadata"]["name"])
                    return True, 'RBAC: allowed by %s of %s "%s" to %s' % (
                        how, ref.get("kind"), ref.get("name"), "User \"%s\"" % user)
    return False, ""


# ---------------------------------------------------------------- patches

def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = copy.deepcopy(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(doc, path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, parts[-1] if parts else None


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        parent, last = _pointer(doc, path)
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise KeyError(path)
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        elif kind == "test":
            cur = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if cur != op.get("value"):
                raise ValueError("testing value %s failed" % path)
        else:
            raise ValueError("unexpected kind: %s" % kind)
    return doc



# ---------------------------------------------------------------- protobuf
# kubectl sends built-in types as protobuf (`kubectl create clusterrolebinding`).
# Enough of the wire format and of the types' field numbers (k8s.io/api
# generated.proto) to read what the lab's users create.

def _varint(b, i):
    shift = result = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if not c & 0x80:
            return result, i
        shift += 7


def _fields(b):
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("protobuf wire type %d" % wt)
        out.append((num, v))
    return out


_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
         11: ("labels", "map"), 12: ("annotations", "map"), 14: ("finalizers", "[str")}
_SUBJECT = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
_ROLEREF = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
_RULE = {1: ("verbs", "[str"), 2: ("apiGroups", "[str"), 3: ("resources", "[str"),
         4: ("resourceNames", "[str"), 5: ("nonResourceURLs", "[str")}
_MICROTIME = "microtime"
_LEASESPEC = {1: ("holderIdentity", "str"), 2: ("leaseDurationSeconds", "int"),
              3: ("acquireTime", _MICROTIME), 4: ("renewTime", _MICROTIME), 5: ("leaseTransitions", "int")}
PB_TYPES = {
    "ClusterRoleBinding": {1: ("metadata", _META), 2: ("subjects", [_SUBJECT]), 3: ("roleRef", _ROLEREF)},
    "RoleBinding": {1: ("metadata", _META), 2: ("subjects", [_SUBJECT]), 3: ("roleRef", _ROLEREF)},
    "ClusterRole": {1: ("metadata", _META), 2: ("rules", [_RULE])},
    "Role": {1: ("metadata", _META), 2: ("rules", [_RULE])},
    "Namespace": {1: ("metadata", _META)},
    "ServiceAccount": {1: ("metadata", _META)},
    "ConfigMap": {1: ("metadata", _META), 2: ("data", "map"), 4: ("immutable", "bool")},
    "Lease": {1: ("metadata", _META), 2: ("spec", _LEASESPEC)},
}


def _decode(b, schema):
    out = {}
    for num, v in _fields(b):
        if num not in schema:
            continue
        name, typ = schema[num]
        if typ == "str":
            out[name] = v.decode()
        elif typ == "[str":
            out.setdefault(name, []).append(v.decode())
        elif typ == "int":
            out[name] = v - (1 << 64) if v >= 1 << 63 else v
        elif typ == "bool":
            out[name] = bool(v)
        elif typ == "map":
            e = dict(_fields(v))
            out.setdefault(name, {})[e.get(1, b"").decode()] = e.get(2, b"").decode()
        elif typ == _MICROTIME:
            e = dict(_fields(v))
            import datetime
            t = datetime.datetime.fromtimestamp(e.get(1, 0), datetime.timezone.utc)
            out[name] = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%06dZ" % (e.get(2, 0) // 1000)
        elif isinstance(typ, list):
            out.setdefault(name, []).append(_decode(v, typ[0]))
        else:
            out[name] = _decode(v, typ)
    return out


def protobuf_object(raw):
    if raw[:4] != b"k8s\x00":
        raise ValueError("no protobuf envelope")
    env = dict(_fields(raw[4:]))
    tm = dict(_fields(env.get(1, b"")))
    api_version, kind = tm.get(1, b"").decode(), tm.get(2, b"").decode()
    if kind not in PB_TYPES:
        raise ValueError("protobuf for %s is not supported by the stand-in; send JSON" % (kind or "?"))
    obj = _decode(env.get(2, b""), PB_TYPES[kind])
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj

# ---------------------------------------------------------------- HTTP

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-apiserver-standin"

    def log_message(self, fmt, *args):
        pass

    # -- replies
    def send_json(self, code, obj):
        data = json.dumps(obj, indent=2).encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        common.info(SRC, '"HTTP" verb="%s" URI="%s" userAgent="%s" user="%s" resp=%d' % (
            self.command, self.path, self.headers.get("User-Agent", ""),
            getattr(self, "user", "?"), code))

    def send_text(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- dispatch
    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def raw_body(self):
        # Read once, for every method: an unread body would corrupt the next
        # request on a kept-alive connection (kubectl sends DeleteOptions).
        if self._raw is None:
            n = int(self.headers.get("Content-Length") or 0)
            self._raw = self.rfile.read(n) if n else b""
        return self._raw

    def read_body(self):
        raw = self.raw_body()
        if not raw:
            return None
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype == "application/vnd.kubernetes.protobuf":
            try:
                return protobuf_object(raw)
            except (ValueError, IndexError, KeyError) as e:
                raise HTTPError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                "format - accepted media types include: application/json, "
                                "application/yaml, application/vnd.kubernetes.protobuf: %s" % e, {})
        try:
            return json.loads(raw)
        except ValueError as e:
            raise HTTPError(400, "BadRequest", "the body of the request was in an unknown "
                            "format - accepted media types include: application/json: %s" % e)

    def authenticate(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            tok = self.server.tokens.get(auth[7:].strip())
            if not tok:
                raise HTTPError(401, "Unauthorized", "Unauthorized")
            return tok
        ident = common.peer_identity(self.connection)
        if ident:
            return ident[0], ident[1] + ["system:authenticated"]
        return "system:anonymous", ["system:unauthenticated"]

    def handle_any(self):
        self.user = "?"
        self._raw = None
        try:
            self.raw_body()
            u = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(u.query).items()}
            user, groups = self.authenticate()
            self.user, self.groups = user, groups
            self.route(u.path.rstrip("/") or "/", user, groups)
        except HTTPError as e:
            self.send_json(e.status["code"], e.status)
        except (ConnectionError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a stand-in must answer, like the real one
            common.error(SRC, "internal error: %r" % e)
            self.send_json(500, common.status(500, "InternalError",
                                              "Internal error occurred: %s" % e))

    def check(self, user, groups, attrs):
        if "system:masters" in groups:
            return
        ok, _ = authorize(self.server.store, user, groups, attrs)
        if ok:
            return
        if attrs.get("path") is not None:
            raise HTTPError(403, "Forbidden", common.forbidden_message(
                user, attrs["verb"], path=attrs["path"]), {})
        res = RESOURCES.get((attrs["group"], attrs["resource"]))
        msg = common.forbidden_message(user, attrs["verb"], attrs["resource"], attrs["group"],
                                       attrs.get("name"), attrs.get("namespace"))
        raise HTTPError(403, "Forbidden", msg,
                        details(res or {"group": attrs["group"], "plural": attrs["resource"]},
                                attrs.get("name")))

    def route(self, path, user, groups):
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"]:
            return self.api(parts, "", parts[1:], user, groups)
        if parts[:1] == ["apis"]:
            if len(parts) >= 3:
                return self.api(parts, parts[1], parts[2:], user, groups)
            self.check(user, groups, {"verb": self.command.lower(), "path": path})
            if len(parts) == 1:
                return self.send_json(200, self.group_list())
            g = self.group_info(parts[1])
            if not g:
                raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})
            return self.send_json(200, g)
        self.check(user, groups, {"verb": self.command.lower(), "path": path})
        if path in ("/healthz", "/livez", "/readyz"):
            return self.send_text(200, "ok")
        if path == "/version":
            return self.send_json(200, self.server.version_info)
        raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})

    # -- discovery
    def api_groups(self):
        out = {}
        for (g, _), r in RESOURCES.items():
            if g:
                out.setdefault(g, r["version"])
        return out

    def group_info(self, g):
        v = self.api_groups().get(g)
        if not v:
            return None
        ver = {"groupVersion": gv(g, v), "version": v}
        return {"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": [ver],
                "preferredVersion": ver}

    def group_list(self):
        out = []
        for g in sorted(self.api_groups()):
            info = self.group_info(g)
            del info["kind"], info["apiVersion"]
            out.append(info)
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def resource_list(self, group, version):
        rl = []
        for (g, _), r in sorted(RESOURCES.items()):
            if g == group and r["version"] == version:
                e = {"name": r["plural"], "singularName": r["singular"], "namespaced": r["namespaced"],
                     "kind": r["kind"], "verbs": r["verbs"]}
                if r["short"]:
                    e["shortNames"] = r["short"]
                rl.append(e)
        if not rl:
            return None
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(group, version),
                "resources": rl}

    # -- resources
    def api(self, parts, group, rest, user, groups):
        """rest: [version, (namespaces, NS,)? resource, (name, (subresource)?)?]"""
        path = "/" + "/".join(parts)
        if not rest:
            self.check(user, groups, {"verb": "get", "path": path})
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": self.server.advertise}]})
        version, rest = rest[0], rest[1:]
        if not rest:
            self.check(user, groups, {"verb": "get", "path": path})
            rl = self.resource_list(group, version)
            if not rl:
                raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})
            return self.send_json(200, rl)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        res = RESOURCES.get((group, resource))
        if not res or res["version"] != version or (ns and not res["namespaced"]) or len(rest) > 3:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})
        if sub:
            raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})
        m = self.command
        if m in ("GET", "HEAD"):
            verb = "get" if name else ("watch" if self.query.get("watch") in ("1", "true") else "list")
        elif m == "POST":
            verb = "create"
        elif m == "PUT":
            verb = "update"
        elif m == "PATCH":
            verb = "patch"
        elif m == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise HTTPError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})
        if verb not in res["verbs"] or (verb == "create" and name) or (verb in ("update", "patch") and not name):
            raise HTTPError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})
        body = self.read_body() if m in ("POST", "PUT", "PATCH") else None
        if res["namespaced"] and not ns and verb not in ("list", "watch"):
            raise HTTPError(404, "NotFound", "the server could not find the requested resource", {})
        attrs = {"verb": verb, "group": group, "resource": resource, "name": name, "namespace": ns}
        if verb == "create" and isinstance(body, dict) and not name:
            attrs["name"] = None
        self.check(user, groups, attrs)
        store = self.server.store
        with store.lock:
            if verb == "watch":
                raise HTTPError(405, "MethodNotAllowed", "watch is not supported by the lab's apiserver stand-in", {})
            if (group, resource) in REVIEWS:
                return self.review(res, body, user, groups)
            if verb == "get":
                obj = store.get(res, ns, name)
                if not obj:
                    raise HTTPError(404, "NotFound", '%s "%s" not found' % (
                        common.qualified(resource, group), name), details(res, name))
                return self.send_json(200, obj)
            if verb == "list":
                return self.send_json(200, self.list_reply(res, store.list(res, ns)))
            if verb == "create":
                return self.create(res, ns, body)
            if verb == "update":
                return self.update(res, ns, name, body)
            if verb == "patch":
                return self.patch(res, ns, name, body)
            if verb == "delete":
                obj = store.get(res, ns, name)
                if not obj:
                    raise HTTPError(404, "NotFound", '%s "%s" not found' % (
                        common.qualified(resource, group), name), details(res, name))
                store.delete(res, ns, name)
                d = details(res, name)
                d["uid"] = obj["metadata"]["uid"]
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Success", "details": d})
            if verb == "deletecollection":
                for o in store.list(res, ns):
                    store.delete(res, ns, o["metadata"]["name"])
                return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                            "status": "Success"})

    def list_reply(self, res, items):
        sel = self.query.get("fieldSelector")
        if sel:
            for term in sel.split(","):
                k, _, v = term.partition("=")
                v = v.lstrip("=")
                field = {"metadata.name": "name", "metadata.namespace": "namespace"}.get(k)
                if field is None:
                    raise HTTPError(400, "BadRequest", '"%s" is not a known field selector: only '
                                    '"metadata.name", "metadata.namespace"' % k)
                items = [o for o in items if o["metadata"].get(field) == v]
        sel = self.query.get("labelSelector")
        if sel:
            for term in sel.split(","):
                k, eq, v = term.partition("=")
                v = v.lstrip("=")
                labels = lambda o: o["metadata"].get("labels") or {}  # noqa: E731
                items = [o for o in items if (labels(o).get(k) == v if eq else k in labels(o))]
        for o in items:
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return {"kind": res["kind"] + "List", "apiVersion": gv(res["group"], res["version"]),
                "metadata": {"resourceVersion": str(self.server.store.rv)}, "items": items}

    def validate_meta(self, res, ns, body):
        if not isinstance(body, dict):
            raise HTTPError(400, "BadRequest", "the body of the request was in an unknown format")
        md = body.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise HTTPError(400, "BadRequest", "metadata must be an object")
        if res["namespaced"]:
            if md.get("namespace") and md["namespace"] != ns:
                raise HTTPError(400, "BadRequest", "the namespace of the provided object does not "
                                "match the namespace sent on the request")
            md["namespace"] = ns
            if not self.server.store.get(RESOURCES[("", "namespaces")], None, ns):
                raise HTTPError(404, "NotFound", 'namespaces "%s" not found' % ns,
                                {"name": ns, "kind": "namespaces"})
        else:
            md.pop("namespace", None)
        return md

    def invalid(self, res, name, message, field):
        raise HTTPError(422, "Invalid", '%s "%s" is invalid: %s' % (res["kind"], name or "", message),
                        {"name": name or "", "group": res["group"], "kind": res["kind"],
                         "causes": [{"reason": "FieldValueRequired", "message": message,
                                     "field": field}]})

    def create(self, res, ns, body):
        md = self.validate_meta(res, ns, body)
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + "".join(
                    random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            else:
                self.invalid(res, "", "metadata.name: Required value: name or generateName is required",
                             "metadata.name")
        if res["kind"] == "ClusterRoleBinding" or res["kind"] == "RoleBinding":
            if not (body.get("roleRef") or {}).get("name"):
                self.invalid(res, md["name"], "roleRef.name: Required value", "roleRef.name")
        store = self.server.store
        if store.get(res, ns, md["name"]):
            raise HTTPError(409, "AlreadyExists", '%s "%s" already exists' % (
                common.qualified(res["plural"], res["group"]), md["name"]), details(res, md["name"]))
        for k in ("uid", "resourceVersion", "creationTimestamp"):
            md.pop(k, None)
        self.send_json(201, store.put(res, body, True))

    def update(self, res, ns, name, body):
        md = self.validate_meta(res, ns, body)
        if md.get("name") != name:
            raise HTTPError(400, "BadRequest", "the name of the object (%s) does not match the name "
                            "on the URL (%s)" % (md.get("name"), name))
        store = self.server.store
        cur = store.get(res, ns, name)
        if not cur:
            if (res["group"], res["plural"]) in CREATE_ON_UPDATE:
                md.pop("resourceVersion", None)
                return self.send_json(201, store.put(res, body, True))
            raise HTTPError(404, "NotFound", '%s "%s" not found' % (
                common.qualified(res["plural"], res["group"]), name), details(res, name))
        self.store_update(res, cur, body)

    def store_update(self, res, cur, body):
        md, name = body["metadata"], cur["metadata"]["name"]
        rv = md.get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise HTTPError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object '
                            'has been modified; please apply your changes to the latest version '
                            'and try again' % (common.qualified(res["plural"], res["group"]), name),
                            details(res, name))
        if res["kind"] in ("ClusterRoleBinding", "RoleBinding") and body.get("roleRef") != cur.get("roleRef"):
            raise HTTPError(422, "Invalid", '%s.%s "%s" is invalid: roleRef: Invalid value: %s: cannot '
                            'change roleRef' % (res["kind"], res["group"], name, json.dumps(body.get("roleRef"))),
                            {"name": name, "group": res["group"], "kind": res["kind"],
                             "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: cannot "
                                         "change roleRef", "field": "roleRef"}]})
        md["uid"] = cur["metadata"]["uid"]
        md["creationTimestamp"] = cur["metadata"]["creationTimestamp"]
        unchanged = {k: v for k, v in body.items() if k not in ("kind", "apiVersion")}
        unchanged["metadata"] = {k: v for k, v in md.items() if k != "resourceVersion"}
        before = {k: v for k, v in cur.items() if k not in ("kind", "apiVersion")}
        before["metadata"] = {k: v for k, v in cur["metadata"].items() if k != "resourceVersion"}
        if unchanged == before:
            # A no-op update keeps the resourceVersion, as the real one does.
            return self.send_json(200, cur)
        self.send_json(200, self.server.store.put(res, body, False))

    def patch(self, res, ns, name, body):
        store = self.server.store
        cur = store.get(res, ns, name)
        if not cur:
            raise HTTPError(404, "NotFound", '%s "%s" not found' % (
                common.qualified(res["plural"], res["group"]), name), details(res, name))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                new = merge_patch(cur, body or {})
            elif ctype == "application/json-patch+json":
                if not isinstance(body, list):
                    raise ValueError("json patch must be a list of operations")
                new = json_patch(cur, body)
            else:
                raise HTTPError(415, "UnsupportedMediaType",
                                'the body of the request was in an unknown format - accepted media '
                                'types include: application/json-patch+json, application/merge-patch+json, '
                                'application/strategic-merge-patch+json', {})
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise HTTPError(422, "Invalid", "the server rejected our request due to an error in our "
                            "request: %s" % e, {})
        md = new.setdefault("metadata", {})
        if md.get("name") != name or (res["namespaced"] and md.get("namespace") != ns):
            raise HTTPError(400, "BadRequest", "metadata.name and metadata.namespace cannot be changed by a patch")
        if md.get("resourceVersion") == cur["metadata"]["resourceVersion"]:
            md.pop("resourceVersion")
        self.store_update(res, cur, new)

    def review(self, res, body, user, groups):
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise HTTPError(400, "BadRequest", "spec is required")
        spec = body["spec"]
        if res["plural"] == "selfsubjectaccessreviews":
            su, sg = user, groups
        else:
            su, sg = spec.get("user") or "", list(spec.get("groups") or [])
            if not su and not sg:
                self.invalid(res, "", "spec.user: Invalid value: \"\": at least one of user or group "
                             "must be specified", "spec.user")
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if nra:
            attrs = {"verb": nra.get("verb", ""), "path": nra.get("path", "")}
        else:
            ra = ra or {}
            attrs = {"verb": ra.get("verb", ""), "group": ra.get("group", ""),
                     "resource": ra.get("resource", ""), "subresource": ra.get("subresource"),
                     "name": ra.get("name"), "namespace": ra.get("namespace")}
        if "system:masters" in sg:
            allowed, reason = True, ""
        else:
            allowed, reason = authorize(self.server.store, su, sg, attrs)
        out = copy.deepcopy(body)
        out["kind"] = res["kind"]
        out["apiVersion"] = gv(res["group"], res["version"])
        out.setdefault("metadata", {})["creationTimestamp"] = None
        out["status"] = {"allowed": allowed}
        if reason:
            out["status"]["reason"] = reason
        self.send_json(201, out)


def main():
    ap = argparse.ArgumentParser(description="kube-apiserver stand-in for the kcmrun lab")
    ap.add_argument("--bind-address", default="127.0.0.1")
    ap.add_argument("--secure-port", type=int, default=6443)
    ap.add_argument("--advertise-address", default=None)
    ap.add_argument("--tls-cert-file", required=True)
    ap.add_argument("--tls-private-key-file", required=True)
    ap.add_argument("--client-ca-file", required=True)
    ap.add_argument("--token-auth-file", default=None,
                    help="CSV: token,user,uid,\"group1,group2\" (as the real flag)")
    ap.add_argument("--standin-state-file", default=None,
                    help="JSON file holding every object (survives restarts)")
    ap.add_argument("--standin-version", default=os.environ.get("KUBE_STANDIN_VERSION", "v1.28.4"))
    ap.add_argument("--v", default="0")
    a = ap.parse_args()

    with open(a.client_ca_file) as f:
        client_ca = f.read()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.tls_cert_file, a.tls_private_key_file)
    ctx.load_verify_locations(cadata=client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL

    store = Store(a.standin_state_file)
    bootstrap(store, client_ca)

    tokens = {}
    if a.token_auth_file:
        import csv
        with open(a.token_auth_file) as f:
            for row in csv.reader(f):
                if len(row) >= 2:
                    groups = [g for g in (row[3].split(",") if len(row) > 3 else []) if g]
                    tokens[row[0]] = (row[1], groups + ["system:authenticated"])

    srv = common.TLSServer((a.bind_address, a.secure_port), Handler, ctx)
    srv.store = store
    srv.tokens = tokens
    srv.advertise = "%s:%d" % (a.advertise_address or a.bind_address, a.secure_port)
    v = a.standin_version.lstrip("v").split(".")
    srv.version_info = {"major": v[0], "minor": v[1] if len(v) > 1 else "0",
                        "gitVersion": "v" + ".".join(v), "gitCommit": "standin",
                        "gitTreeState": "clean", "buildDate": "2023-01-01T00:00:00Z",
                        "goVersion": "go1.20", "compiler": "gc", "platform": "linux/amd64"}
    common.info("secure_serving.go:210", "Serving securely on %s:%d" % (a.bind_address, a.secure_port))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
