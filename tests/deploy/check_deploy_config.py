#!/usr/bin/env python3
"""Checks deploy/ against the binaries it runs (ctest: deploy_config_test).

No Docker engine or Kubernetes cluster runs in CI, so the deployment files are
checked statically, against the real binaries' --helpfull:
  * every flag passed to ingest-gateway, read-service or telemetryctl (compose
    commands, Kubernetes container args, systemd ExecStart) exists;
  * every environment variable given to them is one they read (named in their
    help) or a libpq PG* variable;
  * every port a container listens on is declared, and every probe targets a
    port the service listens on; probes use the plaintext health port;
  * compose: services it depends on, secrets and mounted files exist;
  * Dockerfile: COPY sources exist; the runtime stage runs as a non-root user;
  * systemd units pass `systemd-analyze verify` (with the build's binaries).
Exit status 1 with one line per problem.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

BINARIES = ("ingest-gateway", "read-service", "telemetryctl")
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def help_of(path):
    out = subprocess.run([path, "--helpfull"], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    if path.endswith("telemetryctl"):
        out2 = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60)
        text += out2.stdout + out2.stderr
    flags = set(re.findall(r"^\s+--([a-z0-9_]+) \(", text, re.M))
    flat = " ".join(text.split())
    envs = set(re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", flat))
    envs |= set(re.findall(r"\benv ([A-Z][A-Z0-9_]+)", flat))
    envs |= set(re.findall(r"\b([A-Z][A-Z0-9_]+)=", flat))
    return flags, envs


def check_invocation(where, argv, env_names, known):
    binary = os.path.basename(argv[0]) if argv else ""
    if binary not in known:
        return None
    flags, envs = known[binary]
    for arg in argv[1:]:
        if not arg.startswith("--"):
            continue
        name = arg[2:].split("=", 1)[0]
        if name not in flags:
            problem(where, f"{binary} has no flag --{name}")
    for env in env_names:
        if env.startswith("PG") or env in envs:
            continue
        problem(where, f"{binary} does not read environment variable {env}")
    return binary


def listen_ports(argv):
    ports = {}
    for arg in argv:
        m = re.match(r"--([a-z_]*listen)=.*:(\d+)$", arg)
        if m:
            ports[m.group(1)] = int(m.group(2))
    return ports


def check_compose(path, known):
    with open(path) as f:
        doc = yaml.safe_load(f)
    base = os.path.dirname(path)
    services = doc.get("services", {})
    secrets = doc.get("secrets", {})
    for name, svc in services.items():
        where = f"{os.path.relpath(path)} service {name}"
        command = svc.get("command")
        env = svc.get("environment", {})
        env_names = list(env.keys()) if isinstance(env, dict) else [e.split("=")[0] for e in env]
        if isinstance(command, list):
            check_invocation(where, command, env_names, known)
        for dep in svc.get("depends_on", {}) or {}:
            if dep not in services:
                problem(where, f"depends on unknown service {dep}")
        for s in svc.get("secrets", []) or []:
            if s not in secrets:
                problem(where, f"uses undeclared secret {s}")
        for vol in svc.get("volumes", []) or []:
            src = vol.split(":")[0]
            if src.startswith(".") and not os.path.exists(os.path.join(base, src)):
                problem(where, f"mounts {src}, which does not exist")
        build = svc.get("build")
        if isinstance(build, dict):
            ctx = os.path.join(base, build.get("context", "."))
            if not os.path.exists(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))):
                problem(where, "build.dockerfile does not exist")
    return len(services)


def containers_of(doc):
    kind = doc.get("kind")
    spec = doc.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return spec.get("template", {}).get("spec", {}).get("containers", [])
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"].get("containers", [])
    return []


def check_k8s(directory, known):
    count = 0
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".yaml"):
            continue
        with open(os.path.join(directory, fname)) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            if "apiVersion" not in doc or "kind" not in doc:
                problem(fname, "a document without apiVersion/kind")
                continue
            for c in containers_of(doc):
                count += 1
                where = f"deploy/k8s/{fname} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
                argv = list(c.get("command", [])) + list(c.get("args", []))
                env_names = [e["name"] for e in c.get("env", [])]
                binary = check_invocation(where, argv, env_names, known)
                if binary is None:
                    problem(where, f"runs {argv[:1]}, not one of {BINARIES}")
                    continue
                declared = {p["containerPort"] for p in c.get("ports", [])}
                listening = listen_ports(argv)
                for flag, port in listening.items():
                    if port not in declared:
                        problem(where, f"--{flag} port {port} is not a containerPort")
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    p = c.get(probe)
                    if not p:
                        continue
                    if "grpc" in p:
                        port = p["grpc"]["port"]
                        if listening.get("health_listen") != port:
                            problem(where, f"{probe} gRPC port {port} is not --health_listen "
                                           "(Kubernetes gRPC probes cannot speak TLS)")
                sc = c.get("securityContext", {})
                if sc.get("allowPrivilegeEscalation", True) or not sc.get("readOnlyRootFilesystem"):
                    problem(where, "container not hardened (privilege escalation / writable root)")
            if doc["kind"] in ("Deployment", "Job"):
                pod = doc["spec"]["template"]["spec"]
                if not pod.get("securityContext", {}).get("runAsNonRoot"):
                    problem(f"deploy/k8s/{fname}", f"{doc['metadata']['name']} may run as root")
    return count


def check_dockerfile(path, root):
    text = open(path).read()
    for m in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        for src in m.group(1).split()[:-1]:
            if not os.path.exists(os.path.join(root, src)):
                problem(os.path.relpath(path), f"COPY source {src} does not exist")
    stages = re.split(r"^FROM ", text, flags=re.M)
    if not re.search(r"^USER (?!root|0\b)\S+", stages[-1], re.M):
        problem(os.path.relpath(path), "the runtime stage does not switch to a non-root USER")


def check_systemd(directory, known, bindir):
    units = [f for f in sorted(os.listdir(directory)) if f.endswith(".service")]
    for unit in units:
        for line in open(os.path.join(directory, unit)):
            if line.startswith("ExecStart="):
                check_invocation(f"deploy/systemd/{unit}", shlex.split(line[len("ExecStart="):]),
                                 [], known)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        print("systemd-analyze not installed: unit verification skipped")
        return len(units)
    with tempfile.TemporaryDirectory() as tmp:
        for unit in units:
            text = open(os.path.join(directory, unit)).read()
            for b in BINARIES:
                text = text.replace(f"/usr/local/bin/{b}", bindir[b])
            with open(os.path.join(tmp, unit), "w") as f:
                f.write(text)
        out = subprocess.run([analyze, "verify"] + [os.path.join(tmp, u) for u in units],
                             capture_output=True, text=True, timeout=120)
        for line in (out.stdout + out.stderr).splitlines():
            # Only findings about our units; the host's own units are not ours.
            if any(u in line for u in units) and "Failed to" not in line.split(":", 1)[0]:
                problem("systemd-analyze verify", line)
    return len(units)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    for b in BINARIES:
        ap.add_argument(f"--{b}", required=True)
    args = ap.parse_args()
    bindir = {b: os.path.abspath(getattr(args, b.replace("-", "_"))) for b in BINARIES}
    known = {b: help_of(path) for b, path in bindir.items()}
    for b, (flags, envs) in known.items():
        if len(flags) < 3:
            problem(b, f"--helpfull listed only {len(flags)} flags; the parser is broken")
    deploy = os.path.join(args.source, "deploy")
    n_compose = check_compose(os.path.join(deploy, "docker", "compose.yaml"), known)
    check_dockerfile(os.path.join(deploy, "docker", "Dockerfile"), args.source)
    n_containers = check_k8s(os.path.join(deploy, "k8s"), known)
    n_units = check_systemd(os.path.join(deploy, "systemd"), known, bindir)
    print(f"checked {n_compose} compose services, {n_containers} Kubernetes containers, "
          f"{n_units} systemd units")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
