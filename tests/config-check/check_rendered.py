#!/usr/bin/env python3
"""Checks that every oslo.config INI file of a render folder is real.

    check_rendered.py RENDER_DIR [--venv DIR] [--jobs N]

RENDER_DIR is what `provision render INVENTORY --out RENDER_DIR` writes: the files
under RENDER_DIR/<host>/<absolute path> and RENDER_DIR/manifest.json, which names,
for every oslo file, its id and the oslo-config-generator namespaces of its
project. Each distinct (content, namespaces) pair is checked once, however many
hosts hold it, with oslo-config-validator from the virtualenv that setup.sh
builds (PROVISION_VENV, default <repo>/.cache/oslo-venv):

  * an option that the project does not define in that section fails;
  * a deprecated option name, or an option deprecated for removal, is a warning;
  * in sections where keystoneauth registers its options at run time (the
    sample data lists them partly: [keystone_authtoken], which the validator
    skips, cinder's [nova]...), the options of the section's auth_type plugin
    are legal too;
  * sections named by [DEFAULT] enabled_backends (cinder backends, glance
    stores "name:type") are checked against the backend's option group;
  * values of boolean, integer, float and choice options must parse.

Exits 1 if any file fails, and always ends with "N passed, M failed" (files).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_VENV = Path(os.environ.get("PROVISION_VENV", REPO / ".cache" / "oslo-venv"))

# Helper run with the venv's python: the keystoneauth plugin options of auth types.
PLUGIN_OPTS_SCRIPT = r"""
import json, sys
from keystoneauth1 import loading

def names(opts):
    out = set()
    for o in opts:
        # keystoneauth Opt (.deprecated) or oslo.config Opt (.deprecated_opts)
        deprecated = getattr(o, "deprecated", None) or getattr(o, "deprecated_opts", None) or []
        for n in [o.name, o.dest] + [d.name for d in deprecated]:
            if n:
                out.add(n.replace("-", "_"))
    return sorted(out)

plugins = {}
for name in sys.argv[1:]:
    try:
        plugins[name] = names(loading.get_plugin_loader(name).get_options())
    except Exception:  # not a keystoneauth plugin
        plugins[name] = None
json.dump({
    "plugins": plugins,
    "session": names(loading.get_session_conf_options()),
    "auth": names(loading.get_auth_common_conf_options()),
}, sys.stdout)
"""


@dataclass
class Entry:
    host: str
    path: str
    oslo_id: str


@dataclass
class Check:
    """One distinct (content, namespaces) pair and every file that has it."""

    content: bytes
    namespaces: tuple[str, ...]
    entries: list[Entry] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- INI


def parse_ini(text: str) -> dict[str, dict[str, list[str]]]:
    """oslo.config-style INI: sections of options, an option may repeat (MultiStrOpt)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
            continue
        if current is None:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, sep, value = line.partition(":")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def strip_comments(content: bytes) -> bytes:
    return b"\n".join(
        line for line in content.splitlines() if not line.lstrip().startswith((b"#", b";")) and line.strip()
    )


# ---------------------------------------------------------------------- opt data


def optdata_path(venv: Path, namespaces: tuple[str, ...]) -> Path:
    key = hashlib.sha256("\n".join(namespaces).encode()).hexdigest()[:16]
    return venv / ".provision-optdata" / f"{key}.json"


def generate_optdata(venv: Path, namespaces: tuple[str, ...]) -> dict:
    """Machine-readable option data of the namespaces (oslo-config-generator --format yaml),
    cached in the venv as JSON (setup.sh drops the cache when it reinstalls)."""
    cache = optdata_path(venv, namespaces)
    if cache.is_file():
        return json.loads(cache.read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "opts.yaml"
        cmd = [str(venv / "bin" / "oslo-config-generator"), "--format", "yaml", "--output-file", str(out)]
        for ns in namespaces:
            cmd += ["--namespace", ns]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"oslo-config-generator failed for namespaces {', '.join(namespaces)}:\n{tail}")
        # yaml -> json with the venv's PyYAML (this script may run on a bare python3)
        conv = subprocess.run(
            [str(venv / "bin" / "python"), "-c",
             "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", str(out)],
            capture_output=True, text=True, check=True,
        )
        data = json.loads(conv.stdout)
    tmpfile = cache.with_suffix(f".{os.getpid()}.tmp")
    tmpfile.write_text(json.dumps(data))
    tmpfile.replace(cache)
    return data


def keystoneauth_options(venv: Path, auth_types: set[str]) -> dict:
    """{"plugins": {auth_type: [option names] or None}, "session": [...], "auth": [...]}"""
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", PLUGIN_OPTS_SCRIPT, *sorted(auth_types)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"listing keystoneauth plugin options failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def keystoneauth_group(group: dict | None, ka: dict) -> bool:
    """Does the project register keystoneauth options in this group? Their plugin
    options are registered at run time, so the sample data lists them partly or not at
    all ([keystone_authtoken], cinder's [nova]...)."""
    if group is None:
        return False
    known = {n for o in group.get("opts", []) for n in (o["name"], o.get("dest")) if n}
    return bool(known & set(ka["auth"])) or {"cafile", "certfile", "keyfile", "insecure"} <= known


def dynamic_groups(ini: dict[str, dict[str, list[str]]], data: dict) -> dict[str, list[str]]:
    """Sections whose names the file itself defines -> the option groups they take.

    cinder: enabled_backends = a,b -> [a], [b] take [backend_defaults] and [backend];
    glance: enabled_backends = name:type,... -> [name] takes [<type>] or
    [glance.store.<type>.store].
    """
    out: dict[str, list[str]] = {}
    options = data.get("options", {})
    for value in ini.get("DEFAULT", {}).get("enabled_backends", []):
        for item in filter(None, (v.strip() for v in value.split(","))):
            name, _, kind = item.partition(":")
            name, kind = name.strip(), kind.strip()
            if name in options:
                continue  # a real group of its own
            groups = []
            if kind:
                # the sample documents a store type's options under [<type>] (file,
                # cinder) or [glance.store.<type>.store] (rbd, swift, s3, http...)
                for g in (kind, f"glance.store.{kind}.store"):
                    if g in options:
                        groups.append(g)
            elif "backend_defaults" in options:
                groups = ["backend_defaults"] + (["backend"] if "backend" in options else [])
            if groups:
                out[name] = groups
    return out


def augmented_optdata(data: dict, dyn: dict[str, list[str]]) -> dict:
    if not dyn:
        return data
    data = json.loads(json.dumps(data))
    options = data["options"]
    for name, groups in dyn.items():
        merged = {"opts": [], "help": "", "standard_opts": [], "driver_opts": {}, "driver_option": "",
                  "dynamic_group_owner": ""}
        for g in groups:
            merged["opts"].extend(options[g]["opts"])
        options[name] = merged
        for g in groups:
            if g in data.get("deprecated_options", {}):
                data["deprecated_options"].setdefault(name, []).extend(data["deprecated_options"][g])
    return data


# ------------------------------------------------------------------------ values

BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n"}
NO_SHOW = re.compile(r"pass|secret|key|token|connection|url|uri", re.I)


def check_value(opt: dict, value: str) -> str | None:
    """None if oslo.config would accept the value; else what is wrong (no value shown
    for anything that may hold a secret)."""
    if "$" in value:  # interpolation: checked by the service
        return None
    t = opt.get("type", "")
    show = "" if (opt.get("secret") or NO_SHOW.search(opt["name"])) else f" {value!r}"
    if t == "boolean value":
        if value.lower() not in BOOL_WORDS:
            return f"value{show} is not a boolean"
    elif t in ("integer value", "port value"):
        try:
            n = int(value)
        except ValueError:
            return f"value{show} is not an integer"
        lo, hi = opt.get("min"), opt.get("max")
        if t == "port value":
            lo, hi = (0 if lo is None else lo), (65535 if hi is None else hi)
        if lo is not None and n < lo:
            return f"value{show} is below the minimum {lo}"
        if hi is not None and n > hi:
            return f"value{show} is above the maximum {hi}"
    elif t == "floating point value":
        try:
            x = float(value)
        except ValueError:
            return f"value{show} is not a number"
        lo, hi = opt.get("min"), opt.get("max")
        if lo is not None and x < lo:
            return f"value{show} is below the minimum {lo}"
        if hi is not None and x > hi:
            return f"value{show} is above the maximum {hi}"
    if t in ("string value", "port value", "integer value") and opt.get("choices"):
        choices = [c[0] if isinstance(c, list) else c for c in opt["choices"]]
        allowed = {str(c) for c in choices if c is not None}
        if allowed and value not in allowed and not (None in choices and value == ""):
            return f"value{show} is not one of {', '.join(sorted(allowed))}"
    return None


# ------------------------------------------------------------------------- check


def run_check(venv: Path, check: Check, data: dict, ka: dict) -> None:
    text = check.content.decode("utf-8", errors="replace")
    ini = parse_ini(text)
    dyn = dynamic_groups(ini, data)
    data = augmented_optdata(data, dyn)

    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "input.conf"
        inp.write_bytes(check.content)
        # Only the file's own groups: the validator looks nothing else up, and parsing
        # a whole project's option data (yaml.safe_load) costs seconds per file.
        trimmed = {
            "options": {g: v for g, v in data.get("options", {}).items() if g in ini},
            "deprecated_options": {g: v for g, v in data.get("deprecated_options", {}).items() if g in ini},
            "generator_options": data.get("generator_options", {}),
        }
        opt = Path(tmp) / "opts.json"  # JSON is YAML: the validator's yaml.safe_load reads it
        opt.write_text(json.dumps(trimmed))
        proc = subprocess.run(
            [str(venv / "bin" / "oslo-config-validator"), "--opt-data", str(opt), "--input-file", str(inp)],
            capture_output=True, text=True,
        )
    unknown = re.compile(r"ERROR:oslo_config\.validator:(.+?)/(.+?) is not part of the sample config")
    deprecated = re.compile(r"WARNING:oslo_config\.validator:Deprecated opt (.+?)/(.+?) found")
    ignored = re.compile(r'Ignoring missing option "(.+?)" from group "(.+?)"')
    not_found: list[tuple[str, str]] = []
    for line in proc.stderr.splitlines():
        if m := unknown.search(line):
            not_found.append((m[1], m[2]))
        elif m := deprecated.search(line):
            check.warnings.append(f"[{m[1]}] {m[2]}: deprecated option name")
        elif m := ignored.search(line):  # [keystone_authtoken]: the validator does not check it
            not_found.append((m[2], m[1]))
    if proc.returncode != 0 and not not_found:
        tail = "\n      ".join(proc.stderr.strip().splitlines()[-5:])
        check.errors.append(f"oslo-config-validator failed (exit {proc.returncode}):\n      {tail}")

    # Groups where keystoneauth registers its options at run time: the options of the
    # section's auth_type plugin (and auth_type/auth_section themselves) are legal there.
    for section, name in not_found:
        group = data.get("options", {}).get(section)
        if keystoneauth_group(group, ka):
            auth_type = (ini.get(section, {}).get("auth_type") or [""])[-1]
            if name in ka["auth"] or name in ka["session"]:
                continue
            allowed = ka["plugins"].get(auth_type) if auth_type else None
            if allowed is not None and name in allowed:
                continue
            if not auth_type:
                why = "and no auth_type is set in the section"
            elif allowed is None:
                why = f"and auth_type {auth_type!r} is not a keystoneauth plugin"
            else:
                why = f"nor of auth plugin {auth_type!r}"
            check.errors.append(f"[{section}] {name}: no such option in this section ({why})")
        else:
            check.errors.append(f"[{section}] {name}: no such option in this section")

    # values, and options deprecated for removal
    options = data.get("options", {})
    for section, opts in ini.items():
        group = options.get(section)
        if not group:
            continue
        by_name = {}
        for o in group.get("opts", []):
            by_name[o["name"]] = o
            if o.get("dest"):
                by_name[o["dest"]] = o
        for name, values in opts.items():
            o = by_name.get(name)
            if not o:
                continue
            if o.get("deprecated_for_removal"):
                reason = (o.get("deprecated_reason") or "").strip().split("\n")[0]
                check.warnings.append(f"[{section}] {name}: deprecated for removal" + (f" ({reason[:100]})" if reason else ""))
            if o.get("type") == "multi valued" or o.get("type", "").startswith("list"):
                continue
            if len(values) > 1:
                check.errors.append(f"[{section}] {name}: set {len(values)} times but takes one value")
            for v in values[-1:]:
                if problem := check_value(o, v):
                    check.errors.append(f"[{section}] {name}: {problem}")


def load_manifest(render_dir: Path) -> list[tuple[Entry, tuple[str, ...]]]:
    manifest = json.loads((render_dir / "manifest.json").read_text())
    hosts = manifest.get("hosts", {})
    if isinstance(hosts, list):
        hosts = {h.get("name") or h.get("host"): h for h in hosts}
    out = []
    for host, hm in sorted(hosts.items()):
        for f in hm.get("files", []):
            oslo = f.get("oslo")
            if not oslo:
                continue
            out.append((Entry(host, f["path"], oslo.get("id", "?")), tuple(oslo.get("namespaces", []))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("render_dir", type=Path)
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="virtualenv built by setup.sh (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 2))
    args = ap.parse_args()
    venv: Path = args.venv.resolve()

    if not (venv / "bin" / "oslo-config-validator").exists():
        print(f"error: {venv} has no oslo-config-validator; run tests/config-check/setup.sh", file=sys.stderr)
        return 2
    if not (args.render_dir / "manifest.json").is_file():
        print(f"error: {args.render_dir}/manifest.json not found (provision render ... --out DIR)", file=sys.stderr)
        return 2

    checks: dict[tuple[str, tuple[str, ...]], Check] = {}
    missing: list[Entry] = []
    for entry, namespaces in load_manifest(args.render_dir):
        p = args.render_dir / entry.host / entry.path.lstrip("/")
        if not p.is_file():
            missing.append(entry)
            continue
        content = p.read_bytes()
        # comments (the per-host header) do not change what is validated
        key = (hashlib.sha256(strip_comments(content)).hexdigest(), namespaces)
        checks.setdefault(key, Check(content, namespaces)).entries.append(entry)

    nfiles = sum(len(c.entries) for c in checks.values()) + len(missing)
    print(f"{nfiles} oslo files, {len(checks)} distinct; validating with {venv}", flush=True)

    # option data per namespace set, then the keystoneauth plugins named by auth_type
    namespace_sets = sorted({c.namespaces for c in checks.values()})
    optdata: dict[tuple[str, ...], dict] = {}
    failed_sets: dict[tuple[str, ...], str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(generate_optdata, venv, ns): ns for ns in namespace_sets}
        for fut in concurrent.futures.as_completed(futs):
            ns = futs[fut]
            try:
                optdata[ns] = fut.result()
            except Exception as e:  # noqa: BLE001
                failed_sets[ns] = str(e)
    auth_types = set()
    for c in checks.values():
        for opts in parse_ini(c.content.decode("utf-8", "replace")).values():
            if opts.get("auth_type"):
                auth_types.add(opts["auth_type"][-1])
    try:
        ka = keystoneauth_options(venv, auth_types)
    except Exception as e:  # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        return 2

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = []
        for c in checks.values():
            if c.namespaces in failed_sets:
                c.errors.append(failed_sets[c.namespaces])
            elif not c.namespaces:
                c.errors.append("the manifest names no namespaces for this file")
            else:
                futs.append(pool.submit(run_check, venv, c, optdata[c.namespaces], ka))
        for fut in futs:
            fut.result()

    passed = failed = 0
    for entry in missing:
        failed += 1
        print(f"FAIL {entry.host}:{entry.path} ({entry.oslo_id}): file missing from the render folder")
    for c in sorted(checks.values(), key=lambda c: (c.entries[0].oslo_id, c.entries[0].path, c.entries[0].host)):
        first = c.entries[0]
        where = f"{first.host}:{first.path}"
        if len(c.entries) > 1:
            others = sorted({e.host for e in c.entries[1:]})
            hosts = ", ".join(others) if len(others) <= 4 else f"{', '.join(others[:3])}... ({len(others)} hosts)"
            where += f" (+{len(c.entries) - 1} identical: {hosts})"
        if c.errors:
            failed += len(c.entries)
            print(f"FAIL {where} [{first.oslo_id}]")
            for e in c.errors:
                print(f"    error: {e}")
        else:
            passed += len(c.entries)
            print(f"ok   {where} [{first.oslo_id}]")
        for w in c.warnings:
            print(f"    warning: {w}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
