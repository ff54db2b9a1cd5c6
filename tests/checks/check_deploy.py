#!/usr/bin/env python3
"""Checks of the deployment files: Dockerfile, .dockerignore, deploy/kubernetes/
and deploy/systemd/.

This file owns every check of scripts/check-deploy.sh, which installs the tools
(a virtualenv with pinned PyPI packages; systemd-analyze and busybox from
Debian) and then runs this file with the virtualenv's python. Run it from
anywhere after `cargo build --release`: it starts the built binary
($CARGO_TARGET_DIR/release/partnercenter-exporter, target/ by default) and
verifies the systemd unit against it. It prints one line per check, the details
of a failure under it, and a last line "N passed, N failed"; it exits 1 on any
failure.

`kubectl kustomize` renders the kustomization when kubectl is installed; a
built-in renderer for the subset of kustomize used here does otherwise (or
when KUBECTL is set to the empty string).

The checks:
  tools             the tools are installed: hadolint in the virtualenv,
                    systemd-analyze, busybox
  dockerfile-lint   hadolint, no findings
  dockerfile        base images pinned by tag and digest, `cargo build
                    --release --locked`, EXPOSE 10026, numeric
                    non-root USER, exec-form ENTRYPOINT; every Cargo target
                    and manifest is inside the build context (.dockerignore);
                    the built binary needs no library beyond glibc 2.36 and
                    libgcc_s, which the runtime image has
  k8s-render        kustomization.yaml renders; its files exist
  k8s-schemas       built-in objects against the Kubernetes 1.29 and latest
                    schemas, strict (unknown fields are errors)
  k8s-crds          ServiceMonitor and PrometheusRule against the CRD models,
                    unknown fields are errors
  k8s-contract      what the manifests promise: one replica, Recreate, the
                    security context, probes, resources, secret and state
                    files on the right volumes, Service/ServiceMonitor wiring,
                    the Secret example holding placeholders only
  k8s-seed          the init container's script (busybox), in every case:
                    first start, restart after rotation, re-seed, missing keys
  k8s-exporter      the exporter starts with the Deployment's arguments, the
                    ConfigMap and the seeded volumes; probes and /metrics
                    answer 200; SIGTERM ends it with status 0
  rules-sync        the PrometheusRules carry exactly the groups of
                    prometheus/*.rules.yml
  systemd-contract  the unit's identity, credential, state and restart settings
  systemd-exporter  the exporter starts with the unit's command line and
                    environment file; probes answer; SIGTERM ends it with 0
  systemd-verify    systemd-analyze verify of the unit (ExecStart pointed at
                    the built binary), no warnings about the unit
  systemd-security  systemd-analyze security --offline: exposure at most 2.0

usage: check_deploy.py [--install-failed LOG]
  --install-failed LOG  the tools could not be installed (LOG says why): the
                        tools check fails and only the checks that need none of
                        the virtualenv's packages run
"""

import argparse
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

from exporter_process import Exporter, ProcessError

try:
    import yaml
except ImportError:  # the tools check reports it
    yaml = None

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
SYSTEMD = ROOT / "deploy" / "systemd"
TARGET_DIR = ROOT / (os.environ.get("CARGO_TARGET_DIR") or "target")  # an absolute one wins
BIN = TARGET_DIR / "release" / "partnercenter-exporter"
VENV = TARGET_DIR / "check-deploy" / "venv"
CRD_GROUP = "monitoring.coreos.com/"
UNIT = "partnercenter-exporter.service"
# Set by main(): a temporary directory for everything the checks write.
WORK = RENDERED = None


class Fail(Exception):
    """A check failed; the message is the details printed under it."""


def load_all(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d is not None]


def rendered():
    if not RENDERED.exists():
        raise Fail("the kustomization did not render (see k8s-render)")
    return load_all(RENDERED)


def one(docs, kind, name=None):
    found = [d for d in docs if d.get("kind") == kind
             and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        raise Fail(f"expected one {kind}{' ' + name if name else ''}, found {len(found)}")
    return found[0]


def expect(errors, cond, message):
    if not cond:
        errors.append(message)


def finish(errors, summary):
    if errors:
        raise Fail("\n".join(errors))
    return summary


# ---------------------------------------------------------------- Dockerfile

def dockerignore_included(patterns, path):
    """Docker's rule: the last pattern matching the path or one of its parent
    directories decides; `!` re-includes."""
    def regex(p):
        out = ""
        i = 0
        while i < len(p):
            if p.startswith("**", i):
                out += ".*"
                i += 2
            elif p[i] == "*":
                out += "[^/]*"
                i += 1
            elif p[i] == "?":
                out += "[^/]"
                i += 1
            else:
                out += re.escape(p[i])
                i += 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for raw in patterns:
        neg = raw.startswith("!")
        pat = os.path.normpath(raw[1:] if neg else raw).lstrip("/")
        rx = regex(pat)
        if any(rx.match(p) for p in prefixes):
            included = neg
    return included


def cmd_dockerfile():
    errors = []
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    # Join continuation lines, drop comments.
    logical = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    instr = [(m.group(1).upper(), m.group(2).strip())
             for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", logical, re.M)]
    stages = set()
    for i, a in instr:
        if i != "FROM":
            continue
        words = a.split()
        image = next(w for w in words if not w.startswith("--"))
        if image not in stages:
            expect(errors, re.fullmatch(r"[^@\s]+:[^@/\s]+@sha256:[0-9a-f]{64}", image)
                   is not None, f"FROM {image}: pin the base image by tag and digest")
        if len(words) >= 3 and words[-2].upper() == "AS":
            stages.add(words[-1])
    runs = [a for i, a in instr if i == "RUN"]
    expect(errors, any(re.search(r"\bcargo build --release --locked(\s|$|&)", r) for r in runs),
           "no RUN step runs `cargo build --release --locked`, the build CI compiles")
    expect(errors, ("EXPOSE", "10026") in instr, "EXPOSE 10026 missing")
    entry = [a for i, a in instr if i == "ENTRYPOINT"]
    try:
        entry_ok = bool(entry) and isinstance(json.loads(entry[-1]), list)
    except json.JSONDecodeError:
        entry_ok = False
    expect(errors, entry_ok, "ENTRYPOINT must be in exec form (a JSON array)")
    users = [a for i, a in instr if i == "USER"]
    expect(errors, bool(users) and re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", users[-1]) is not None,
           "the last USER must be a numeric non-root uid (Kubernetes runAsNonRoot checks it)")

    # The build context: every file Cargo needs must get through .dockerignore.
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    meta = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline", "--locked"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    if meta.returncode != 0:
        raise Fail("cargo metadata failed:\n" + meta.stderr)
    needed = {"Cargo.toml", "Cargo.lock"}
    for pkg in json.loads(meta.stdout)["packages"]:
        needed.add(str(Path(pkg["manifest_path"]).relative_to(ROOT)))
        for target in pkg["targets"]:
            needed.add(str(Path(target["src_path"]).relative_to(ROOT)))
    for path in sorted(needed):
        expect(errors, dockerignore_included(patterns, path),
               f".dockerignore keeps {path} out of the build context; cargo needs it")
    for path in ("target/release/partnercenter-exporter", ".git/HEAD"):
        expect(errors, not dockerignore_included(patterns, path),
               f".dockerignore lets {path} into the build context")

    # The runtime image (distroless cc, Debian 12) has glibc 2.36 and libgcc_s,
    # and little else: the binary CI built must need no more.
    if not BIN.exists():
        raise Fail("\n".join(errors + [f"{BIN} not found: run cargo build --release first"]))
    dyn = subprocess.run(["readelf", "--dynamic", "--wide", str(BIN)], capture_output=True, text=True)
    syms = subprocess.run(["readelf", "--dyn-syms", "--wide", str(BIN)], capture_output=True, text=True)
    if dyn.returncode or syms.returncode:
        raise Fail("\n".join(errors + ["readelf failed: " + dyn.stderr + syms.stderr]))
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    runtime_libs = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2",
                    "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    extra = sorted(set(libs) - runtime_libs)
    expect(errors, not extra, f"the binary needs {extra}, which the runtime image may not have")
    glibc = max((tuple(map(int, v.split("."))) for v in re.findall(r"@GLIBC_([0-9.]+)", syms.stdout)),
                default=(0,))
    expect(errors, glibc <= (2, 36), f"the binary needs glibc {'.'.join(map(str, glibc))}; "
                                     "the runtime image (Debian 12) has 2.36")
    return finish(errors, f"pinned bases, build command, EXPOSE, USER, ENTRYPOINT; {len(needed)} Cargo files in the "
                   f"context; the binary needs only {', '.join(libs)} (glibc <= 2.36)")


# ---------------------------------------------------------------- Kubernetes

KUSTOMIZE_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images"}


def split_image(image):
    name, tag = image, None
    if "@" in name:
        name = name.split("@", 1)[0]
    elif ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    return name, tag


def pod_spec(doc):
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return doc["spec"]["template"]["spec"]
    return None


def generator_files(gen):
    for entry in gen.get("files", []):
        key, _, path = entry.rpartition("=")
        yield (key or Path(path).name), path


def builtin_render(kust):
    """The subset of kustomize this kustomization uses: resources (files),
    namespace, configMapGenerator (without the name hash) and images."""
    unsupported = set(kust) - KUSTOMIZE_KEYS
    if unsupported:
        raise Fail(f"kustomization uses {sorted(unsupported)}: render it with kubectl kustomize")
    docs = []
    for res in kust.get("resources", []):
        path = K8S / res
        if not path.is_file():
            raise Fail(f"resource {res}: not a file (bases need kubectl kustomize)")
        docs += load_all(path)
    for gen in kust.get("configMapGenerator", []):
        data = {key: (K8S / path).read_text(encoding="utf-8") for key, path in generator_files(gen)}
        for literal in gen.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        meta = {"name": gen["name"]}
        labels = gen.get("options", {}).get("labels")
        if labels:
            meta["labels"] = dict(labels)
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
    images = {i["name"]: i for i in kust.get("images", [])}
    for doc in docs:
        if kust.get("namespace"):
            doc["metadata"]["namespace"] = kust["namespace"]
        spec = pod_spec(doc)
        for c in (spec or {}).get("containers", []) + (spec or {}).get("initContainers", []):
            name, tag = split_image(c["image"])
            if name in images:
                rule = images[name]
                new = rule.get("newName", name)
                if rule.get("digest"):
                    c["image"] = f"{new}@{rule['digest']}"
                else:
                    tag = rule.get("newTag", tag)
                    c["image"] = f"{new}:{tag}" if tag else new
    return docs


def identity(doc):
    name = doc["metadata"]["name"]
    if doc["kind"] == "ConfigMap":
        name = re.sub(r"-[a-z0-9]{10}$", "", name)  # kustomize's hash suffix
    return (doc["kind"], doc["metadata"].get("namespace"), name)


def cmd_k8s_render():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kust.get("resources", [])
    listed = list(resources) + [p for g in kust.get("configMapGenerator", [])
                                for _, p in generator_files(g)]
    missing = [p for p in listed if not (K8S / p).exists()]
    if missing:
        raise Fail(f"kustomization.yaml lists files that do not exist: {missing}")
    if "secret.example.yaml" in resources:
        raise Fail("secret.example.yaml must not be a kustomization resource")
    builtin = builtin_render(kust)
    # KUBECTL= (empty) forces the built-in renderer.
    kubectl = os.environ.get("KUBECTL", shutil.which("kubectl"))
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            raise Fail("kubectl kustomize failed:\n" + out.stderr)
        RENDERED.write_text(out.stdout, encoding="utf-8")
        docs = load_all(RENDERED)
        # Keep the built-in renderer honest while kubectl is at hand.
        a, b = sorted(map(identity, docs), key=str), sorted(map(identity, builtin), key=str)
        if a != b:
            raise Fail(f"kubectl kustomize and the built-in renderer disagree:\n{a}\n{b}")
        how = "kubectl kustomize; the built-in renderer agrees"
    else:
        docs = builtin
        RENDERED.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
        how = "built-in renderer; no kubectl"
    return f"{len(docs)} objects from {len(listed)} files ({how})"


def cmd_k8s_schemas():
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils

    versions = ["1.29.0", kv_utils.latest_version()]
    errors, count = [], 0
    for doc in rendered():
        if doc["apiVersion"].startswith(CRD_GROUP):
            continue
        count += 1
        for version in versions:
            ident = f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version})"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                path = ".".join(str(p) for p in err.path)
                errors.append(f"{ident}: {path}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                errors.append(f"{ident}: {err.message}")
    return finish(errors, f"{count} objects valid against the Kubernetes {' and '.join(versions)} "
                   "schemas (strict, offline)")


def cmd_k8s_crds():
    import typing

    import pydantic
    from cloudcoil.models.prometheus_operator import v1

    models = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}

    def model_types(tp):
        if typing.get_origin(tp) is None:
            return [tp] if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel) else []
        return [m for arg in typing.get_args(tp) for m in model_types(arg)]

    def unknown_fields(cls, data, path):
        # The generated models accept unknown keys; a CRD's structural schema
        # would prune them silently. Both hide typos: report them.
        if isinstance(data, list):
            return [e for i, item in enumerate(data) for e in unknown_fields(cls, item, f"{path}[{i}]")]
        if not isinstance(data, dict):
            return []
        if issubclass(cls, pydantic.RootModel):
            return [e for sub in model_types(cls.model_fields["root"].annotation)
                    for e in unknown_fields(sub, data, path)]
        fields = {}
        for name, field in cls.model_fields.items():
            fields[name] = field
            fields[field.alias or name] = field
        out = []
        for key, value in data.items():
            if key not in fields:
                out.append(f"{path}.{key}: unknown field")
                continue
            for sub in model_types(fields[key].annotation):
                out += unknown_fields(sub, value, f"{path}.{key}")
        return out

    errors, seen = [], []
    for doc in rendered():
        if not doc["apiVersion"].startswith(CRD_GROUP):
            continue
        ident = f"{doc['kind']}/{doc['metadata']['name']}"
        cls = models.get(doc["kind"])
        if cls is None or doc["apiVersion"] != CRD_GROUP + "v1":
            errors.append(f"{ident}: no model for {doc['apiVersion']} {doc['kind']}")
            continue
        seen.append(doc["kind"])
        try:
            cls.model_validate(doc)
        except pydantic.ValidationError as err:
            errors.append(f"{ident}: {err}")
        errors += [f"{ident}: {e}" for e in unknown_fields(cls, doc, doc["kind"])]
    for kind in models:
        expect(errors, kind in seen, f"no {kind} in the kustomization")
    return finish(errors, f"{len(seen)} objects valid against the Prometheus Operator CRD models "
                   "(monitoring.coreos.com/v1, unknown fields rejected)")


def cmd_k8s_contract():
    docs = rendered()
    errors = []
    dep = one(docs, "Deployment")
    spec = dep["spec"]
    pod = pod_spec(dep)
    expect(errors, spec.get("replicas") == 1, "Deployment: replicas must be 1 by default")
    expect(errors, spec.get("strategy", {}).get("type") == "Recreate",
           "Deployment: strategy must be Recreate (the state volume is ReadWriteOnce)")
    psc = pod.get("securityContext", {})
    expect(errors, psc.get("runAsNonRoot") is True, "pod: runAsNonRoot must be true")
    expect(errors, psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
           "pod: seccompProfile must be RuntimeDefault")
    containers = pod["containers"] + pod.get("initContainers", [])
    for c in containers:
        sc = c.get("securityContext", {})
        expect(errors, sc.get("readOnlyRootFilesystem") is True,
               f"container {c['name']}: readOnlyRootFilesystem must be true")
        expect(errors, sc.get("allowPrivilegeEscalation") is False,
               f"container {c['name']}: allowPrivilegeEscalation must be false")
        expect(errors, "ALL" in sc.get("capabilities", {}).get("drop", []),
               f"container {c['name']}: capabilities must drop ALL")
        res = c.get("resources", {})
        expect(errors, {"cpu", "memory"} <= set(res.get("requests", {}))
               and "memory" in res.get("limits", {}),
               f"container {c['name']}: needs cpu and memory requests and a memory limit")
    exporter = [c for c in pod["containers"] if c["name"] == "exporter"]
    if len(exporter) != 1:
        raise Fail("\n".join(errors + ["Deployment: no container named exporter"]))
    c = exporter[0]
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    expect(errors, ports.get("metrics") == 10026, "exporter: containerPort 10026 must be named metrics")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        get = c.get(probe, {}).get("httpGet", {})
        expect(errors, get.get("path") == path and get.get("port") in ("metrics", 10026),
               f"exporter: {probe} must GET {path} on the metrics port")

    # Files: flag -> the volume it must live on.
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in c.get("args", []) if "=" in a}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    def volume_of(path):
        best = max((m for m in mounts if path.startswith(m.rstrip("/") + "/")), key=len, default=None)
        return volumes.get(mounts[best]) if best else None

    pvcs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    for flag in ("--auth.refresh-token-file", "--poll.cache-file"):
        vol = volume_of(args.get(flag, "")) if flag in args else None
        claim = (vol or {}).get("persistentVolumeClaim", {}).get("claimName")
        expect(errors, claim in pvcs, f"exporter: {flag} must name a file on a PersistentVolumeClaim")
        if claim in pvcs:
            expect(errors, pvcs[claim]["spec"].get("accessModes") == ["ReadWriteOnce"],
                   f"PersistentVolumeClaim {claim}: accessModes must be [ReadWriteOnce]")
    secret_names = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    example = load_all(K8S / "secret.example.yaml")
    ex = one(example, "Secret")
    expect(errors, ex["metadata"]["name"] in secret_names,
           f"Deployment mounts no Secret named {ex['metadata']['name']} (secret.example.yaml)")
    expect(errors, "--auth.client-secret-file" in args and volume_of(args["--auth.client-secret-file"]),
           "exporter: --auth.client-secret-file must name a file on a mounted volume")
    values = dict(ex.get("stringData", {}))
    expect(errors, {"client_secret", "refresh_token"} <= set(values),
           "secret.example.yaml: needs keys client_secret and refresh_token")
    expect(errors, "data" not in ex and all(str(v).startswith("REPLACE-") for v in values.values()),
           "secret.example.yaml: values must be REPLACE-... placeholders in stringData")
    cfg = args.get("--config.file", "")
    cfg_vol = volume_of(cfg) if cfg else None
    cm_name = (cfg_vol or {}).get("configMap", {}).get("name")
    cms = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    expect(errors, cm_name in cms and Path(cfg).name in cms[cm_name].get("data", {}),
           "exporter: --config.file must name a key of a ConfigMap in the kustomization")

    # Service and ServiceMonitor wiring.
    svc = one(docs, "Service")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    expect(errors, all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
           "Service: selector does not match the pod's labels")
    sports = {p.get("name"): p for p in svc["spec"]["ports"]}
    expect(errors, sports.get("metrics", {}).get("port") == 10026,
           "Service: port 10026 must be named metrics")
    sm = one(docs, "ServiceMonitor")
    sel = sm["spec"]["selector"].get("matchLabels", {})
    expect(errors, sel and all(svc["metadata"].get("labels", {}).get(k) == v for k, v in sel.items()),
           "ServiceMonitor: selector does not match the Service's labels")
    eps = sm["spec"]["endpoints"]
    expect(errors, len(eps) == 1 and eps[0].get("port") == "metrics" and eps[0].get("interval") == "60s",
           "ServiceMonitor: one endpoint, port metrics, interval 60s")
    dockerfile = (ROOT / "Dockerfile").read_text()
    expect(errors, re.search(r"^EXPOSE\s+10026\b", dockerfile, re.M) is not None,
           "Dockerfile does not EXPOSE 10026, the port of the manifests")
    return finish(errors, "replicas 1, Recreate, security context, probes, resources, secret/state/config "
                   "volumes, Service and ServiceMonitor wiring, Secret example placeholders")


# --- running the init container and the exporter with the manifests' paths

def shell():
    """busybox sh with only busybox's applets on PATH, as in the init image."""
    busybox = shutil.which("busybox")
    if not busybox:
        return ["/bin/sh"], os.environ.get("PATH", "/usr/bin:/bin"), "/bin/sh"
    applets = WORK / "busybox-bin"
    if not applets.exists():
        applets.mkdir()
        subprocess.run([busybox, "--install", "-s", str(applets)], check=True, capture_output=True)
    return [busybox, "sh"], str(applets), "busybox sh"


def rewrite(value, mapping):
    for src in sorted(mapping, key=len, reverse=True):
        value = re.sub(re.escape(src) + r"(?![\w.-])", str(mapping[src]), value)
    return value


class Pod:
    """The Deployment's pod on this machine: one directory per volume."""

    def __init__(self, docs, base):
        self.dep = one(docs, "Deployment")
        self.spec = pod_spec(self.dep)
        self.docs = docs
        self.base = base
        self.vols = {}
        for v in self.spec.get("volumes", []):
            d = base / "volumes" / v["name"]
            d.mkdir(parents=True)
            self.vols[v["name"]] = d
            if "configMap" in v:
                cm = one(docs, "ConfigMap", v["configMap"]["name"])
                for key, value in cm.get("data", {}).items():
                    (d / key).write_text(value)

    def secret_volume(self):
        for v in self.spec["volumes"]:
            if "secret" in v:
                return self.vols[v["name"]], v["secret"].get("defaultMode", 0o644)
        raise Fail("the Deployment mounts no Secret")

    def set_secret(self, **keys):
        d, mode = self.secret_volume()
        for f in d.iterdir():
            f.unlink()
        for key, value in keys.items():
            (d / key).write_text(value + "\n")
            (d / key).chmod(mode)

    def mapping(self, container):
        return {m["mountPath"]: self.vols[m["name"]] for m in container.get("volumeMounts", [])}

    def container(self, name, init=False):
        for c in self.spec.get("initContainers" if init else "containers", []):
            if c["name"] == name:
                return c
        raise Fail(f"no {'init ' if init else ''}container {name}")

    def run_init(self):
        c = self.spec["initContainers"][0]
        cmd, path, _ = shell()
        argv = c["command"] + c.get("args", [])
        if argv[:2] != ["/bin/sh", "-c"]:
            raise Fail(f"init container {c['name']}: expected /bin/sh -c SCRIPT")
        script = rewrite(argv[2], self.mapping(c))
        return subprocess.run(cmd + ["-c", script], capture_output=True, text=True,
                              env={"PATH": path}, timeout=30)


def cmd_k8s_seed():
    docs = rendered()
    _, _, shell_name = shell()
    errors = []
    n = [0]

    def new_pod():
        n[0] += 1
        return Pod(docs, WORK / f"seed{n[0]}")

    def state(pod):
        return next(pod.vols[v["name"]] for v in pod.spec["volumes"] if "persistentVolumeClaim" in v)

    def secrets_out(pod):
        return next(pod.vols[v["name"]] for v in pod.spec["volumes"] if "emptyDir" in v)

    def run(pod, want_ok, case):
        r = pod.run_init()
        if (r.returncode == 0) != want_ok:
            errors.append(f"{case}: exit {r.returncode}, wanted {'0' if want_ok else 'non-zero'}:"
                          f" {r.stdout}{r.stderr}".rstrip())
        return r

    def token(pod):
        f = state(pod) / "refresh_token"
        return f.read_text().strip() if f.exists() else None

    pod = new_pod()
    pod.set_secret(client_secret="cs-1", refresh_token="rt-seed-1")
    run(pod, True, "first start")
    rt = state(pod) / "refresh_token"
    cs = secrets_out(pod) / "client_secret"
    expect(errors, token(pod) == "rt-seed-1", "first start: refresh token not copied to the volume")
    for f in (rt, cs):
        expect(errors, f.exists() and stat.S_IMODE(f.stat().st_mode) == 0o600,
               f"first start: {f.name} must be mode 0600")
    expect(errors, cs.exists() and cs.read_text().strip() == "cs-1", "first start: client secret not copied")

    rt.write_text("rt-rotated-2\n")  # what the exporter does
    run(pod, True, "restart after rotation")
    expect(errors, token(pod) == "rt-rotated-2", "restart after rotation: the rotated token was overwritten")

    pod.set_secret(client_secret="cs-1")
    run(pod, True, "refresh_token removed from the Secret")
    expect(errors, token(pod) == "rt-rotated-2", "refresh_token removed from the Secret: token lost")

    pod.set_secret(client_secret="cs-1", refresh_token="rt-seed-3")
    run(pod, True, "re-seed")
    expect(errors, token(pod) == "rt-seed-3", "re-seed: a changed Secret did not replace the token")

    pod = new_pod()
    pod.set_secret(client_secret="cs-1", refresh_token="rt-seed-1")
    state(pod).joinpath("refresh_token").write_text("rt-already-there\n")
    run(pod, True, "volume seeded by hand")
    expect(errors, token(pod) == "rt-already-there", "volume seeded by hand: token overwritten")

    pod = new_pod()
    pod.set_secret(client_secret="cs-1")
    run(pod, False, "no refresh token anywhere")

    pod = new_pod()
    pod.set_secret(refresh_token="rt-seed-1")
    run(pod, False, "no client secret")
    return finish(errors, f"7 cases ({shell_name} with busybox applets only)"
           if shell_name.startswith("busybox") else f"7 cases ({shell_name})")


def run_exporter(args, env, paths, log):
    """Starts the exporter on loopback (Azure AD and Partner Center pointed at
    a closed loopback port), GETs `paths`, then stops it with SIGTERM."""
    if not BIN.exists():
        raise Fail(f"{BIN} not found: run cargo build --release first")
    args = list(args) + ["--auth.authority=http://127.0.0.1:9", "--partner-center.url=http://127.0.0.1:9"]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PARTNERCENTER_")}
    with Exporter(BIN, args, log, env={**base_env, **env}) as exporter:
        try:
            exporter.wait_until_answers(paths[0], timeout=20)
        except ProcessError as err:
            raise Fail(f"{err}:\n{exporter.log_text()}") from None
        statuses = {path: exporter.get(path, timeout=5)[0] for path in paths}
        bad = {p: s for p, s in statuses.items() if s != 200}
        if bad:
            raise Fail(f"answers other than 200: {bad}\n{exporter.log_text()}")
        rc = exporter.stop(timeout=15)
        if rc is None:
            raise Fail("still running 15s after SIGTERM")
        if rc != 0:
            raise Fail(f"exit status {rc} after SIGTERM:\n{exporter.log_text()}")
        # Start-up must be clean (no warning about file modes, say); what the
        # poll against the closed port logs afterwards does not matter.
        text = exporter.log_text()
        startup = text.split("msg=listening", 1)[0]
        if re.search(r"level=(warn|error)", startup, re.I):
            raise Fail(f"warnings or errors at start-up:\n{text}")


def uncomment_customers(text):
    """The example's commented-out `customers:` block, switched on."""
    out, on = [], False
    for line in text.splitlines():
        if line.startswith("# customers:"):
            on = True
        if on and line.startswith("#"):
            line = line[2:]
        elif on:
            on = False
        out.append(line)
    return "\n".join(out) + "\n"


def cmd_k8s_exporter():
    docs = rendered()
    pod = Pod(docs, WORK / "k8s-run")
    pod.set_secret(client_secret="test-client-secret", refresh_token="test-refresh-token")
    r = pod.run_init()
    if r.returncode != 0:
        raise Fail(f"init container failed: {r.stdout}{r.stderr}")
    c = pod.container("exporter")
    mapping = pod.mapping(c)
    args = [rewrite(a, mapping) for a in c.get("args", [])]
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    probes = [c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe") if p in c]
    sm = one(docs, "ServiceMonitor")
    paths = probes + [ep.get("path", "/metrics") for ep in sm["spec"]["endpoints"]]
    run_exporter(args, env, paths, WORK / "k8s-exporter.log")
    # The same with the example's customer list switched on.
    cfg = next(a.split("=", 1)[1] for a in args if a.startswith("--config.file="))
    variant = Path(cfg).with_name("config-customers.yml")
    variant.write_text(uncomment_customers(Path(cfg).read_text()))
    if "customers" not in yaml.safe_load(variant.read_text()):
        raise Fail("config.yml: no commented-out customers example found to try")
    run_exporter([a if not a.startswith("--config.file=") else f"--config.file={variant}" for a in args],
                 env, paths, WORK / "k8s-exporter-customers.log")
    return (f"init container, then the exporter with the Deployment's args and ConfigMap "
          f"(also with customers:); {', '.join(dict.fromkeys(paths))} answer 200; SIGTERM exits 0")


def rule_groups():
    files = sorted((ROOT / "prometheus").glob("*.rules.yml"))
    groups = []
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        groups += data.get("groups") or []
    return files, groups


def cmd_rules_sync():
    files, want = rule_groups()
    if not files:
        raise Fail("no prometheus/*.rules.yml to compare with")
    docs = load_all(K8S / "prometheusrule.yaml")
    have = [g for d in docs if d.get("kind") == "PrometheusRule" for g in d["spec"].get("groups") or []]
    key = lambda g: json.dumps(g, sort_keys=True)  # noqa: E731
    if sorted(map(key, have)) != sorted(map(key, want)):
        by_name_want = {g.get("name"): g for g in want}
        by_name_have = {g.get("name"): g for g in have}
        lines = []
        for name in sorted(set(by_name_want) | set(by_name_have), key=str):
            if name not in by_name_have:
                lines.append(f"group {name}: in the rule files, missing from prometheusrule.yaml")
            elif name not in by_name_want:
                lines.append(f"group {name}: in prometheusrule.yaml, not in the rule files")
            elif key(by_name_want[name]) != key(by_name_have[name]):
                lines.append(f"group {name}: differs")
        if len(have) != len(by_name_have) or len(want) != len(by_name_want):
            lines.append("duplicate group names")
        raise Fail("\n".join(lines) + "\nrun scripts/gen-prometheusrule.py")
    rules = sum(len(g.get("rules") or []) for g in want)
    return f"{len(want)} groups, {rules} rules from {len(files)} files: identical"


# ---------------------------------------------------------------- systemd

def unit_settings(path):
    """[Section] -> key -> [values], continuation lines joined."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = settings.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return settings


def cmd_systemd_contract():
    unit = unit_settings(SYSTEMD / "partnercenter-exporter.service")
    svc = unit.get("Service", {})
    errors = []
    want = {
        "DynamicUser": "yes", "StateDirectory": "partnercenter-exporter", "ProtectSystem": "strict",
        "Restart": "on-failure", "KillSignal": "SIGTERM", "NoNewPrivileges": "yes",
        "PrivateTmp": "yes", "ProtectHome": "yes", "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes", "RestrictNamespaces": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "SystemCallFilter": "@system-service",
    }
    for key, value in want.items():
        expect(errors, value in svc.get(key, []), f"[Service] {key}={value} missing")
    for key in ("ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs"):
        expect(errors, "yes" in svc.get(key, []), f"[Service] {key}=yes missing")
    expect(errors, any(v.startswith("client_secret:") for v in svc.get("LoadCredential", [])),
           "[Service] LoadCredential=client_secret:PATH missing")
    expect(errors, bool(svc.get("EnvironmentFile")), "[Service] EnvironmentFile= missing")
    argv = shlex.split(svc.get("ExecStart", [""])[-1])
    expect(errors, argv[:1] == ["/usr/local/bin/partnercenter-exporter"],
           "ExecStart must run /usr/local/bin/partnercenter-exporter")
    flags = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    expect(errors, flags.get("--auth.client-secret-file") == "${CREDENTIALS_DIRECTORY}/client_secret",
           "ExecStart: --auth.client-secret-file=${CREDENTIALS_DIRECTORY}/client_secret missing")
    for flag in ("--auth.refresh-token-file", "--poll.cache-file"):
        expect(errors, flags.get(flag, "").startswith("${STATE_DIRECTORY}/"),
               f"ExecStart: {flag} must be in ${{STATE_DIRECTORY}}")
    return finish(errors, "DynamicUser, StateDirectory, LoadCredential, EnvironmentFile, hardening, "
                   "Restart=on-failure, KillSignal=SIGTERM, file flags")


def env_file(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip('"')
    return env


def cmd_systemd_exporter():
    unit = unit_settings(SYSTEMD / "partnercenter-exporter.service")
    svc = unit["Service"]
    base = WORK / "systemd-run"
    dirs = {name: base / name.lower() for name in
            ("CONFIGURATION_DIRECTORY", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")}
    for d in dirs.values():
        d.mkdir(parents=True)
        d.chmod(0o700)
    shutil.copy(SYSTEMD / "config.yml", dirs["CONFIGURATION_DIRECTORY"] / "config.yml")
    cred = dirs["CREDENTIALS_DIRECTORY"] / svc["LoadCredential"][0].split(":", 1)[0]
    cred.write_text("test-client-secret\n")
    cred.chmod(0o400)
    rt = dirs["STATE_DIRECTORY"] / "refresh_token"
    rt.write_text("test-refresh-token\n")
    rt.chmod(0o600)
    argv = shlex.split(svc["ExecStart"][-1])
    args = [re.sub(r"\$\{(\w+)\}", lambda m: str(dirs[m.group(1)]), a) for a in argv[1:]]
    env = env_file(SYSTEMD / "partnercenter-exporter.env")
    run_exporter(args, env, ["/-/ready", "/-/healthy", "/metrics"], WORK / "systemd-exporter.log")
    cfg = dirs["CONFIGURATION_DIRECTORY"] / "config.yml"
    cfg.write_text(uncomment_customers(cfg.read_text()))
    if "customers" not in yaml.safe_load(cfg.read_text()):
        raise Fail("config.yml: no commented-out customers example found to try")
    run_exporter(args, env, ["/-/ready"], WORK / "systemd-exporter-customers.log")
    return (f"ExecStart's arguments with config.yml and {len(env)} settings of the env file "
          "(also with customers:); probes and /metrics answer 200; SIGTERM exits 0")


def systemd_unit_copy():
    """A copy of the unit whose ExecStart is the binary `cargo build --release`
    made: systemd-analyze verify needs ExecStart's binary to exist."""
    if not os.access(BIN, os.X_OK):
        raise Fail(f"{BIN} not found: run cargo build --release first")
    text = (SYSTEMD / UNIT).read_text()
    text = re.sub(r"^ExecStart=/usr/local/bin/partnercenter-exporter", lambda _: f"ExecStart={BIN}",
                  text, flags=re.M)
    if not re.search(rf"^ExecStart={re.escape(str(BIN))}", text, re.M):
        raise Fail("ExecStart= does not start with /usr/local/bin/partnercenter-exporter")
    copy = WORK / "systemd"
    copy.mkdir(exist_ok=True)
    (copy / UNIT).write_text(text)
    return copy


def run_output(argv, **kwargs):
    """(exit status, stdout and stderr together) of a command."""
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    return r.returncode, r.stdout


def cmd_systemd_verify():
    rc, out = run_output(["systemd-analyze", "verify", "--man=no", UNIT], cwd=systemd_unit_copy())
    # Warnings (unknown keys, bad values) do not change the exit status: any
    # line about the unit is a failure.
    if rc != 0 or "partnercenter-exporter" in out:
        raise Fail(out.rstrip("\n"))
    return (out.rstrip("\n") + "\n" if out.strip() else "") + f"{UNIT}: no errors or warnings"


def cmd_systemd_security():
    rc, out = run_output(["systemd-analyze", "security", "--offline=yes", "--threshold=20", UNIT],
                         cwd=systemd_unit_copy())
    levels = [re.sub(r" [^ ]*$", "", m) for m in re.findall(r"Overall exposure level.*", out)]
    if rc != 0 or not levels:
        raise Fail(out.rstrip("\n"))
    return "\n".join(levels)


# ---------------------------------------------------------------- tools

def first_line(argv):
    rc, out = run_output(argv)
    if rc != 0:
        raise Fail(f"{' '.join(map(str, argv))} failed:\n{out}")
    return out.splitlines()[0] if out else ""


def cmd_tools():
    hadolint = VENV / "bin" / "hadolint"
    missing = [what for what, ok in (
        (f"{hadolint}", os.access(hadolint, os.X_OK)),
        ("PyYAML in the virtualenv", yaml is not None),
        ("systemd-analyze", shutil.which("systemd-analyze")),
        ("busybox", shutil.which("busybox")),
    ) if not ok]
    if missing:
        raise Fail(f"missing: {', '.join(missing)} (scripts/check-deploy.sh installs them)")
    return f"venv {VENV}; {first_line([hadolint, '--version'])}; {first_line(['systemd-analyze', '--version'])}"


def cmd_dockerfile_lint():
    rc, out = run_output([VENV / "bin" / "hadolint", "Dockerfile"], cwd=ROOT)
    if rc != 0:
        raise Fail(out.rstrip("\n"))
    return (out.rstrip("\n") + "\n" if out.strip() else "") + "Dockerfile: no findings"


# ---------------------------------------------------------------- the run

# Checks that need the tools, in the order they run.
CHECKS = {
    "dockerfile-lint": cmd_dockerfile_lint,
    "dockerfile": cmd_dockerfile,
    "k8s-render": cmd_k8s_render,
    "k8s-schemas": cmd_k8s_schemas,
    "k8s-crds": cmd_k8s_crds,
    "k8s-contract": cmd_k8s_contract,
    "k8s-seed": cmd_k8s_seed,
    "k8s-exporter": cmd_k8s_exporter,
    "rules-sync": cmd_rules_sync,
    "systemd-contract": cmd_systemd_contract,
    "systemd-exporter": cmd_systemd_exporter,
}
# Checks that need only systemd-analyze: they run even without the tools.
SYSTEMD_ANALYZE_CHECKS = {
    "systemd-verify": cmd_systemd_verify,
    "systemd-security": cmd_systemd_security,
}


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, fn):
        """Runs one check: "ok" with the last line of its summary, or "FAIL"
        with the details indented under it."""
        try:
            summary = fn()
        except Fail as err:
            details = str(err)
        except Exception:  # noqa: BLE001 - a bug in a check fails that check only
            details = traceback.format_exc().rstrip("\n")
        else:
            last = summary.splitlines()[-1] if summary else ""
            print(f"ok    {name:<17} {last}", flush=True)
            self.passed += 1
            return True
        print(f"FAIL  {name}")
        for line in details.splitlines():
            print(f"      {line}")
        sys.stdout.flush()
        self.failed += 1
        return False


def main():
    global WORK, RENDERED
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--install-failed", metavar="LOG", type=Path,
                    help="the tools could not be installed; LOG holds the installer's output")
    args = ap.parse_args()
    os.chdir(ROOT)
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="check-deploy-") as work:
        WORK = Path(work)
        RENDERED = WORK / "rendered.yaml"
        if args.install_failed:
            def install_failed():
                raise Fail(args.install_failed.read_text(errors="replace").rstrip("\n"))
            tools_ok = rep.check("tools", install_failed)
        else:
            tools_ok = rep.check("tools", cmd_tools)
        if tools_ok:
            for name, fn in CHECKS.items():
                rep.check(name, fn)
        else:
            print("      (the other checks need these tools)")
        for name, fn in SYSTEMD_ANALYZE_CHECKS.items():
            rep.check(name, fn)
    print(f"{rep.passed} passed, {rep.failed} failed")
    sys.exit(1 if rep.failed else 0)


if __name__ == "__main__":
    main()
