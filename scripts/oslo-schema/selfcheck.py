#!/usr/bin/env python3
"""Checks the option catalogue of a release against the renders and the services' tools.

    selfcheck.py RELEASE [--provision PATH]

Run with the release's virtualenv python (generate.sh RELEASE --self-check does).
Needs a current `cargo build --release` (target/release/provision).

a. Renders every inventories/*.toml (not *.secrets.toml) and checks every option of
   every rendered oslo file (each distinct content once) against
   templates/_common/oslo/schema/RELEASE.json with the reader's rules:
     - a section the schema lacks, named by cinder's [DEFAULT] enabled_backends, takes
       the options of [backend_defaults] and [backend]; one named by glance's
       enabled_backends `name:type` takes [<type>] or [glance.store.<type>.store];
     - a section whose options include auth_type takes the options of the
       keystoneauth plugin its auth_type value names (auth_plugins);
     - an old name ("deprecated": [[group, name]]) is a warning, as is an option
       deprecated for removal; section names are case-insensitive (but DEFAULT), as
       oslo.config reads them.
b. For each case of tests/fixtures/option-cases.toml: the rendered file of that id
   from a host of that role (example-production render) with the case's option set,
   judged by oslo-config-validator (unknown and deprecated names) and oslo.config's
   own parsing (values); and the example-production inventory with the case added,
   judged by `provision validate --release RELEASE`. One line per case; exit 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OSLO_DIR = REPO / "templates" / "_common" / "oslo"
CASES = REPO / "tests" / "fixtures" / "option-cases.toml"
PROD = REPO / "inventories" / "example-production.toml"

BOOL_WORDS = {"true", "false", "1", "0", "yes", "no", "on", "off"}


# ------------------------------------------------------------------------- INI


def parse_ini(text: str) -> dict[str, dict[str, list[str]]]:
    """oslo.config-style INI: sections of options, an option may repeat (MultiStrOpt)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
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


def set_option(text: str, section: str, option: str, value: str) -> str:
    """The INI text with `option = value` in [section] (replacing the option's lines)."""
    lines = text.splitlines()
    out, cur, done = [], None, False
    for line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            if cur == section and not done:
                out.append(f"{option} = {value}")
                done = True
            cur = s[1:-1].strip()
            out.append(line)
            continue
        if cur == section and not s.startswith(("#", ";")) and s.partition("=")[0].strip() == option:
            if not done:
                out.append(f"{option} = {value}")
                done = True
            continue
        out.append(line)
    if not done:
        if cur != section:
            out += ["", f"[{section}]"]
        out.append(f"{option} = {value}")
    return "\n".join(out) + "\n"


def strip_comments(content: bytes) -> bytes:
    return b"\n".join(l for l in content.splitlines() if l.strip() and not l.lstrip().startswith((b"#", b";")))


# --------------------------------------------------------------------- renders


def render(provision: Path, inventory: Path, out: Path) -> dict:
    proc = subprocess.run([str(provision), "render", str(inventory), "--out", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"provision render {inventory.name} failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return json.loads((out / "manifest.json").read_text())


def oslo_files(manifest: dict):
    """(host, role, path, id, namespaces) of every oslo file of a render."""
    for host, hm in sorted(manifest["hosts"].items()):
        for f in hm.get("files", []):
            if f.get("oslo"):
                yield host, hm.get("role"), f["path"], f["oslo"]["id"], tuple(f["oslo"].get("namespaces", []))


# ------------------------------------------------------------------- part a


class Schema:
    def __init__(self, data: dict):
        self.data = data
        self.plugins = data["auth_plugins"]

    def file(self, fid: str) -> dict:
        return self.data["files"][fid]["sections"]

    def check(self, fid: str, ini: dict) -> tuple[list[str], list[str]]:
        """(errors, warnings) of one rendered file."""
        sections = self.file(fid)
        lower = {s.lower(): s for s in sections if s != "DEFAULT"}
        # (old section, old name) -> (section, name)
        old = {}
        for s, opts in sections.items():
            for n, f in opts.items():
                for g, dn in f.get("deprecated", []):
                    old.setdefault((g, dn), (s, n))
        dyn = {}
        for value in ini.get("DEFAULT", {}).get("enabled_backends", []):
            for item in filter(None, (v.strip() for v in value.split(","))):
                name, _, kind = (x.strip() for x in item.partition(":"))
                if kind:
                    dyn[name] = [g for g in (kind, f"glance.store.{kind}.store") if g in sections]
                else:
                    dyn[name] = [g for g in ("backend_defaults", "backend") if g in sections]
        errors, warnings = [], []
        for sec, opts in ini.items():
            real = sec if sec == "DEFAULT" else lower.get(sec.lower())
            if real is not None:
                known = dict(sections[real])
            elif sec in dyn and dyn[sec]:
                known = {}
                for g in dyn[sec]:
                    for n, f in sections[g].items():
                        known.setdefault(n, f)
            else:
                known = None
            plugin = None
            if known is not None and "auth_type" in known and opts.get("auth_type"):
                at = opts["auth_type"][-1]
                plugin = self.plugins.get(at)
                if plugin is None:
                    errors.append(f"[{sec}] auth_type: {at!r} is not a keystoneauth plugin")
            for name, values in opts.items():
                f = known.get(name) if known is not None else None
                where = f"[{sec}] {name}"
                if f is None and plugin is not None:
                    f = plugin.get(name)
                    if f is None:
                        for pn, pf in plugin.items():
                            if [None, name] in pf.get("deprecated", []):
                                warnings.append(f"{where}: deprecated name of [{sec}] {pn} (auth plugin)")
                                f = pf
                                break
                if f is None:
                    target = old.get((real or sec, name))
                    if target:
                        warnings.append(f"{where}: deprecated name of [{target[0]}] {target[1]}")
                        f = sections[target[0]][target[1]]
                    elif known is None:
                        errors.append(f"{where}: no section [{sec}] in {fid}")
                        continue
                    else:
                        errors.append(f"{where}: no such option")
                        continue
                if f.get("removal"):
                    r = f["removal"]
                    warnings.append(f"{where}: deprecated for removal" + (f" ({r})" if isinstance(r, str) else ""))
                if f["type"] not in ("multi",) and len(values) > 1:
                    errors.append(f"{where}: set {len(values)} times but takes one value")
                if problem := check_value(f, values[-1]):
                    errors.append(f"{where}: {problem}")
        return errors, warnings


def check_value(f: dict, value: str) -> str | None:
    if "$" in value:
        return None
    t = f["type"]
    if t == "bool" and value.lower() not in BOOL_WORDS:
        return f"{value!r} is not a boolean"
    if t in ("int", "port", "float"):
        try:
            x = float(value) if t == "float" else int(value)
        except ValueError:
            return f"{value!r} is not a number"
        if "min" in f and x < f["min"]:
            return f"{value!r} is below the minimum {f['min']}"
        if "max" in f and x > f["max"]:
            return f"{value!r} is above the maximum {f['max']}"
    if f.get("choices") and t in ("str", "int", "port"):
        choices = f["choices"]
        if value not in [c for c in choices if c is not None] and not (None in choices and value == ""):
            return f"{value!r} is not one of {', '.join(str(c) for c in choices)}"
    return None


def part_a(schema: Schema, provision: Path, tmp: Path) -> tuple[int, dict]:
    print("== a. every rendered oslo file against the schema")
    seen: dict[tuple[str, str], list[str]] = {}
    contents = {}
    renders = {}
    failures = 0
    for inv in sorted((REPO / "inventories").glob("*.toml")):
        if inv.name.endswith(".secrets.toml"):
            continue
        out = tmp / f"render-{inv.stem}"
        try:
            manifest = render(provision, inv, out)
        except RuntimeError as e:
            print(f"FAIL {e}")
            failures += 1
            continue
        renders[inv.stem] = (out, manifest)
        for host, _role, path, fid, _ns in oslo_files(manifest):
            content = (out / host / path.lstrip("/")).read_bytes()
            key = (fid, hashlib.sha256(strip_comments(content)).hexdigest())
            seen.setdefault(key, []).append(f"{inv.stem}:{host}:{path}")
            contents[key] = content
    nerr = nwarn = 0
    for key in sorted(seen):
        fid = key[0]
        errors, warnings = schema.check(fid, parse_ini(contents[key].decode()))
        where = seen[key][0] + (f" (+{len(seen[key]) - 1} identical)" if len(seen[key]) > 1 else "")
        print(f"{'FAIL' if errors else 'ok  '} [{fid}] {where}")
        for e in errors:
            print(f"    error: {e}")
        for w in warnings:
            print(f"    warning: {w}")
        nerr += len(errors)
        nwarn += len(warnings)
    print(f"a: {len(seen)} distinct files of {sum(map(len, seen.values()))}: {nerr} errors, {nwarn} warnings")
    return failures + (1 if nerr else 0), renders


# ------------------------------------------------------------------- part b


def optdata_yaml(cache: Path, fid: str, namespaces: tuple[str, ...]) -> dict:
    import yaml

    key = hashlib.sha256("\n".join(namespaces).encode()).hexdigest()[:16]
    p = cache / "optdata" / f"{fid}-{key}.json"
    if p.is_file():
        return json.loads(p.read_text())
    p.parent.mkdir(parents=True, exist_ok=True)
    out = p.with_suffix(".yaml")
    cmd = [str(Path(sys.executable).parent / "oslo-config-generator"), "--format", "yaml", "--output-file", str(out)]
    for ns in namespaces:
        cmd += ["--namespace", ns]
    subprocess.run(cmd, check=True, capture_output=True)
    data = yaml.load(out.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    p.write_text(json.dumps(data))
    out.unlink()
    return data


def augmented(data: dict, ini: dict) -> dict:
    """As check_rendered.py: sections named by enabled_backends take their backend's groups."""
    options = data["options"]
    out = {"options": {g: v for g, v in options.items() if g in ini},
           "deprecated_options": {g: v for g, v in data.get("deprecated_options", {}).items() if g in ini},
           "generator_options": data.get("generator_options", {})}
    for value in ini.get("DEFAULT", {}).get("enabled_backends", []):
        for item in filter(None, (v.strip() for v in value.split(","))):
            name, _, kind = (x.strip() for x in item.partition(":"))
            if name in options:
                continue
            groups = ([g for g in (kind, f"glance.store.{kind}.store") if g in options] if kind
                      else [g for g in ("backend_defaults", "backend") if g in options])
            if groups:
                out["options"][name] = {"opts": [o for g in groups for o in options[g]["opts"]], "help": "",
                                        "standard_opts": [], "driver_opts": {}, "driver_option": "",
                                        "dynamic_group_owner": ""}
    return out


def oslo_verdict(cache: Path, fid: str, namespaces: tuple[str, ...], conf_file: Path, section: str, option: str,
                 schema: Schema) -> tuple[str, str]:
    """(verdict, detail) of the services' own tools on one file."""
    ini = parse_ini(conf_file.read_text())
    data = augmented(optdata_yaml(cache, fid, namespaces), ini)
    opt = conf_file.with_suffix(".opts.json")
    opt.write_text(json.dumps(data))
    proc = subprocess.run([str(Path(sys.executable).parent / "oslo-config-validator"), "--opt-data", str(opt),
                           "--input-file", str(conf_file)], capture_output=True, text=True)
    unknown = re.compile(r"ERROR:[\w.]+:(.+?)/(.+?) is not part of the sample config")
    deprecated = re.compile(r"WARNING:[\w.]+:Deprecated opt (.+?)/(.+?) found")
    ignored = re.compile(r'Ignoring missing option "(.+?)" from group "(.+?)"')
    verdict, detail = "ok", ""
    for line in proc.stderr.splitlines():
        if (m := unknown.search(line)) and (m[1], m[2]) == (section, option):
            return "error", "validator: not part of the sample config"
        if (m := ignored.search(line)) and (m[2], m[1]) == (section, option):
            return "error", "validator: missing option"
        if (m := deprecated.search(line)) and (m[1], m[2]) == (section, option):
            verdict, detail = "warning", "validator: deprecated opt"
    # values: oslo.config's own parsing, the namespaces' options registered
    from oslo_config import cfg, generator

    conf = cfg.ConfigOpts()
    registered = {}
    for _ns, groups in generator._list_opts(list(namespaces)):
        for g, opts in groups:
            gname = getattr(g, "name", g) or "DEFAULT"
            for o in opts:
                o = copy.copy(o)
                o.required = False  # a required option the file leaves out is not this check's business
                try:
                    conf.register_opt(o, group=None if gname == "DEFAULT" else gname)
                except cfg.DuplicateOptError:
                    pass
                registered.setdefault(gname, {})[o.dest] = o
    # the option the file sets, by its current name (a deprecated name maps to it)
    target = (section, option)
    if option not in registered.get(section, {}):
        for s, opts in registered.items():
            for o in opts.values():
                if any((d.group or s, d.name or o.dest) == (section, option) for d in o.deprecated_opts):
                    target = (s, o.dest)
    conf(args=["--config-file", str(conf_file)], project="selfcheck", default_config_files=[],
         default_config_dirs=[], validate_default_values=False, use_env=False)
    try:
        g = conf if target[0] == "DEFAULT" else conf[target[0]]
        g[target[1]]
    except cfg.ConfigFileValueError as e:
        msg = " ".join(str(e).split())
        return "error", "oslo.config: " + (msg.split("is not valid: ", 1)[-1] if "is not valid: " in msg else msg)[:140]
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError) as e:
        return "error", f"oslo.config: {e}"
    o = registered.get(target[0], {}).get(target[1])
    if o is not None and o.deprecated_for_removal and verdict == "ok":
        verdict, detail = "warning", "oslo.config: deprecated for removal"
    return verdict, detail


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


def provision_verdict(provision: Path, tmp: Path, case: dict, release: str) -> tuple[str, str]:
    """Copy of example-production (+ secrets) with the case added, under the repo's layout."""
    root = tmp / f"inv-{hashlib.sha256(case['name'].encode()).hexdigest()[:8]}"
    inv_dir = root / "inventories"
    inv_dir.mkdir(parents=True)
    for p in REPO.iterdir():
        if p.name not in ("inventories", ".git", "target", ".cache"):
            (root / p.name).symlink_to(p)
    for p in (REPO / "inventories").iterdir():
        if p.name != PROD.name:
            (inv_dir / p.name).symlink_to(p)
    text = PROD.read_text()
    role = case.get("role")
    header = (f"[roles.{role}.config.{case['file']}.{case['section']}]" if role
              else f"[config.{case['file']}.{case['section']}]")
    line = f"{case['option']} = {toml_value(case['value'])}"
    lines = text.splitlines()
    if header in (l.strip() for l in lines):
        # the table exists: a duplicate header (or key) is a TOML error, so set the key in it
        i = [l.strip() for l in lines].index(header)
        j = i + 1
        while j < len(lines) and not lines[j].lstrip().startswith("["):
            if re.match(rf"\s*{re.escape(case['option'])}\s*=", lines[j]):
                lines[j] = line
                break
            j += 1
        else:
            lines.insert(i + 1, line)
        text = "\n".join(lines) + "\n"
    else:
        text = text.rstrip("\n") + f"\n\n{header}\n{line}\n"
    copy = inv_dir / PROD.name
    copy.write_text(text)
    proc = subprocess.run([str(provision), "validate", "--release", release, str(copy)], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    mentions = lambda kind: [l for l in out.splitlines() if l.startswith(f"{kind}:") and case["option"] in l]
    if proc.returncode == 1 and mentions("error"):
        return "error", mentions("error")[0][:160]
    if proc.returncode == 0 and mentions("warning"):
        return "warning", mentions("warning")[0][:160]
    if proc.returncode == 0:
        return "ok", ""
    tail = " | ".join(l for l in out.strip().splitlines()[-3:])
    return f"failed(exit {proc.returncode})", tail[:200]


def part_b(schema: Schema, provision: Path, tmp: Path, cache: Path, renders: dict) -> int:
    print("== b. tests/fixtures/option-cases.toml: the services' tools and provision validate")
    if "example-production" not in renders:
        print("FAIL no example-production render")
        return 1
    out, manifest = renders["example-production"]
    cases = tomllib.loads(CASES.read_text())["case"]
    bad = 0
    for case in cases:
        src = next(((h, p, ns) for h, role, p, fid, ns in oslo_files(manifest)
                    if role == case.get("role", role) and fid == case["file"]), None)
        if src is None:
            print(f"{case['name']}: no {case['file']} file on a host of role {case.get('role')}  DISAGREE")
            bad += 1
            continue
        host, path, ns = src
        conf_file = tmp / f"case-{hashlib.sha256(case['name'].encode()).hexdigest()[:8]}.conf"
        text = (out / host / path.lstrip("/")).read_text()
        conf_file.write_text(set_option(text, case["section"], case["option"], str(case["value"])))
        ov, odetail = oslo_verdict(cache, case["file"], ns, conf_file, case["section"], case["option"], schema)
        pv, pdetail = provision_verdict(provision, tmp, case, schema.data["release"])
        agree = ov == pv == case["expect"]
        bad += not agree
        print(f"{case['name']}: oslo={ov} provision={pv} expect={case['expect']}  {'AGREE' if agree else 'DISAGREE'}")
        if odetail:
            print(f"    oslo: {odetail}")
        if pdetail:
            print(f"    provision: {pdetail}")
    print(f"b: {len(cases)} cases, {bad} disagreements")
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("release")
    ap.add_argument("--provision", type=Path, default=REPO / "target" / "release" / "provision")
    ap.add_argument("--only", choices=["a", "b"])
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore")  # the services' import-time deprecation warnings
    schema_file = OSLO_DIR / "schema" / f"{args.release}.json"
    if not schema_file.is_file():
        print(f"error: {schema_file} not found (scripts/oslo-schema/generate.sh {args.release})", file=sys.stderr)
        return 2
    if not args.provision.is_file():
        print(f"error: {args.provision} not found (cargo build --release)", file=sys.stderr)
        return 2
    schema = Schema(json.loads(schema_file.read_text()))
    cache = REPO / ".cache" / "oslo-schema" / args.release
    rc = 0
    with tempfile.TemporaryDirectory(prefix="oslo-selfcheck-") as t:
        tmp = Path(t)
        ra, renders = part_a(schema, args.provision, tmp)
        rc |= ra if args.only != "b" else 0
        if args.only != "a":
            rc |= part_b(schema, args.provision, tmp, cache, renders)
    print("self-check:", "ok" if rc == 0 else "FAILED")
    return rc


if __name__ == "__main__":
    sys.exit(main())
