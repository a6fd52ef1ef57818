#!/usr/bin/env python3
"""Writes templates/_common/oslo/schema/RELEASE.json: the options of every oslo.config
file the project renders, as the release installed in this python defines them.

    generate.py RELEASE [--cache DIR]

Run by generate.sh with the release's virtualenv python (it needs oslo.config,
keystoneauth1 and the services installed). For each file id of
templates/_common/oslo/<id>.toml it runs `oslo-config-generator --format yaml` with
the file's `namespaces` and reduces the option data to the compact schema (format:
scripts/oslo-schema/README.md). It also compares each file's namespaces with the
project's own generator config (from the project's sdist, downloaded into
DIR/sdist) and warns about a namespace the project lists that the toml lacks.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.metadata as md
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
OSLO_DIR = REPO / "templates" / "_common" / "oslo"
SCHEMA_DIR = OSLO_DIR / "schema"

# The generator's type names -> the schema's.
TYPES = {
    "string value": "str",
    "integer value": "int",
    "floating point value": "float",
    "boolean value": "bool",
    "port value": "port",
    "list value": "list",
    "dict value": "dict",
    "multi valued": "multi",
    "host address value": "host",
    "hostname value": "hostname",
    "ip address value": "ip",
    "uri value": "uri",
}

# file id -> (PyPI project, the project's own generator config of that file, as a path
# suffix inside its sdist)
PROJECT_CONFIGS = {
    "nova": ("nova", "etc/nova/nova-config-generator.conf"),
    "keystone": ("keystone", "config-generator/keystone.conf"),
    "glance-api": ("glance", "etc/oslo-config-generator/glance-api.conf"),
    "placement": ("openstack-placement", "etc/placement/config-generator.conf"),
    "cinder": ("cinder", "tools/config/cinder-config-generator.conf"),
    "neutron": ("neutron", "etc/oslo-config-generator/neutron.conf"),
    "dhcp_agent": ("neutron", "etc/oslo-config-generator/dhcp_agent.ini"),
    "l3_agent": ("neutron", "etc/oslo-config-generator/l3_agent.ini"),
    "metadata_agent": ("neutron", "etc/oslo-config-generator/metadata_agent.ini"),
    "ml2_conf": ("neutron", "etc/oslo-config-generator/ml2_conf.ini"),
    "openvswitch_agent": ("neutron", "etc/oslo-config-generator/openvswitch_agent.ini"),
}

REMOVAL_MAX = 160


def log(msg: str) -> None:
    print(f"generate.py: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ namespaces


def oslo_files() -> dict[str, list[str]]:
    """file id -> namespaces, from templates/_common/oslo/<id>.toml."""
    out = {}
    for p in sorted(OSLO_DIR.glob("*.toml")):
        data = tomllib.loads(p.read_text())
        ns = data.get("namespaces")
        if not isinstance(ns, list) or not ns:
            raise SystemExit(f"error: {p} has no `namespaces = [...]` list")
        out[p.stem] = [str(n) for n in ns]
    return out


def namespace_providers() -> dict[str, md.Distribution]:
    """oslo-config-generator namespace -> the installed distribution that provides it."""
    out = {}
    for dist in md.distributions():
        for ep in dist.entry_points:
            if ep.group == "oslo.config.opts":
                out.setdefault(ep.name, dist)
    return out


def project_namespaces(cache: Path, files: dict[str, list[str]]) -> dict[str, list[str] | None]:
    """file id -> the namespaces of the project's own generator config (None: not found)."""
    sdist_dir = cache / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[str] | None] = {}
    projects = sorted({PROJECT_CONFIGS[f][0] for f in files if f in PROJECT_CONFIGS})
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(projects) or 1) as pool:
        tarballs = dict(zip(projects, pool.map(lambda p: fetch_sdist(p, sdist_dir), projects)))
    for fid in files:
        if fid not in PROJECT_CONFIGS:
            out[fid] = None
            continue
        project, suffix = PROJECT_CONFIGS[fid]
        tb = tarballs[project]
        if tb is None:
            out[fid] = None
            continue
        text = None
        with tarfile.open(tb) as t:
            for m in t.getmembers():
                # <project>-<version>/<suffix>
                if m.isfile() and m.name.split("/", 1)[-1] == suffix:
                    text = t.extractfile(m).read().decode()
                    break
        if text is None:
            log(f"warning: {tb.name} has no {suffix}")
            out[fid] = None
            continue
        out[fid] = [m[1] for m in re.finditer(r"^\s*namespace\s*=\s*(\S+)\s*$", text, re.M)]
    return out


def fetch_sdist(project: str, sdist_dir: Path) -> Path | None:
    version = md.version(project)
    norm = re.sub(r"[-_.]+", "_", project).lower()
    for p in sdist_dir.glob("*.tar.gz"):
        stem = re.sub(r"[-_.]+", "_", p.name[: -len(".tar.gz")]).lower()
        if stem == f"{norm}_{version.replace('.', '_')}":
            return p
    log(f"downloading the sdist of {project}=={version} (its generator configs)")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--no-binary", ":all:", "-d", str(sdist_dir), f"{project}=={version}"],
        capture_output=True, text=True,
    )
    for p in sdist_dir.glob("*.tar.gz"):
        stem = re.sub(r"[-_.]+", "_", p.name[: -len(".tar.gz")]).lower()
        if stem == f"{norm}_{version.replace('.', '_')}":
            return p
    log(f"warning: could not download the sdist of {project}=={version}: {proc.stderr.strip()[-500:]}")
    return None


# ----------------------------------------------------------------- option data


# Run with this python in a fresh process: the groups where importing the namespaces'
# modules registers keystoneauth's auth_type (ks_loading.register_auth_conf_options at
# import time) while the namespaces' option lists leave it out (cinder [service_user]).
RUNTIME_AUTH_SCRIPT = r"""
import json, sys
from oslo_config import cfg, generator
listed = {}
for _ns, groups in generator._list_opts(sys.argv[1:]):
    for g, opts in groups:
        listed.setdefault(getattr(g, "name", g) or "DEFAULT", set()).update(o.dest for o in opts)
out = sorted(name for name, group in cfg.CONF._groups.items()
             if name in listed and "auth_type" in group._opts and "auth_type" not in listed[name])
json.dump(out, sys.stdout)
"""


def runtime_auth_groups(namespaces: list[str]) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", RUNTIME_AUTH_SCRIPT, *namespaces], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"listing the run-time keystoneauth groups failed:\n{proc.stderr[-1500:]}")
    return json.loads(proc.stdout)


def auth_common_opts(section: str) -> dict:
    """auth_type and auth_section as keystoneauth registers them in a section."""
    from keystoneauth1 import loading

    return {o.dest: reduce_opt(_entry(o), section) for o in loading.get_auth_common_conf_options()}


def _entry(oo) -> dict:
    """An oslo.config Opt -> the generator's entry fields that reduce_opt reads."""
    choices = getattr(oo.type, "choices", None)
    return {
        "name": oo.name,
        "dest": oo.dest,
        "type": _type_name(oo.type),
        "min": getattr(oo.type, "min", None),
        "max": getattr(oo.type, "max", None),
        "choices": list(choices.items()) if choices else [],
        "deprecated_opts": [{"group": d.group, "name": d.name} for d in oo.deprecated_opts],
        "deprecated_for_removal": oo.deprecated_for_removal,
        "deprecated_reason": oo.deprecated_reason,
        "deprecated_since": oo.deprecated_since,
        "secret": oo.secret,
    }


def run_generator(namespaces: list[str]) -> tuple[dict, list[str]]:
    return _run_generator(namespaces), runtime_auth_groups(namespaces)


def _run_generator(namespaces: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "opts.yaml"
        cmd = [str(Path(sys.executable).parent / "oslo-config-generator"), "--format", "yaml",
               "--output-file", str(out)]
        for ns in namespaces:
            cmd += ["--namespace", ns]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
            raise RuntimeError(f"oslo-config-generator failed for {', '.join(namespaces)}:\n{tail}")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(out.read_text(), Loader=loader)


def first_line(text: str) -> str:
    for line in (text or "").strip().splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= REMOVAL_MAX else line[: REMOVAL_MAX - 3].rstrip() + "..."
    return ""


def reduce_opt(entry: dict, section: str | None) -> dict:
    """One option of the generator's data (or of _entry()) -> the schema's fields.
    section None: a keystoneauth plugin option (its section is the one it is loaded
    into, so a same-section deprecated name keeps group null)."""
    raw = entry.get("type") or "unknown value"
    t = TYPES.get(raw, raw)
    out: dict = {"type": t}
    lo, hi = entry.get("min"), entry.get("max")
    if t == "port":
        lo = 0 if lo is None else lo
        hi = 65535 if hi is None else hi
    if lo is not None:
        out["min"] = lo
    if hi is not None:
        out["max"] = hi
    choices = entry.get("choices") or []
    if choices:
        vals = []
        for c in choices:
            v = c[0] if isinstance(c, (list, tuple)) else c
            vals.append(None if v is None else str(v))
        out["choices"] = vals
    dest = entry.get("dest") or entry["name"].replace("-", "_")
    dep = []
    for d in entry.get("deprecated_opts") or []:
        # oslo.config (Opt._get_from_namespace): a DeprecatedOpt's group None is the
        # option's own group, its name None the option's own name.
        g = d.get("group") or section
        n = (d.get("name") or dest).replace("-", "_")
        if [g, n] == [section, dest] or [g, n] in dep:
            continue
        dep.append([g, n])
    if dep:
        out["deprecated"] = dep
    if entry.get("deprecated_for_removal"):
        out["removal"] = first_line(entry.get("deprecated_reason") or "") or True
    if entry.get("deprecated_since"):
        out["since"] = str(entry["deprecated_since"])
    if entry.get("secret"):
        out["secret"] = True
    return out


def reduce_file(data: dict) -> tuple[dict, list[str]]:
    """generator data -> {section: {option: fields}}, and notes on run-time sections."""
    sections: dict[str, dict] = {}
    notes = []
    for group, g in (data.get("options") or {}).items():
        opts = sections.setdefault(group, {})
        for e in g.get("opts") or []:
            dest = e.get("dest") or e["name"].replace("-", "_")
            fields = reduce_opt(e, group)
            if dest in opts and opts[dest] != fields:
                log(f"note: [{group}] {dest} is defined twice, differently; keeping the first")
                continue
            opts.setdefault(dest, fields)
        if g.get("driver_opts"):
            notes.append(f"[{group}] has driver options selected by `{g.get('driver_option')}`: "
                         + ", ".join(f"{k}: {len(v)} options" for k, v in g["driver_opts"].items()))
        if g.get("dynamic_group_owner"):
            notes.append(f"[{group}] is a dynamic group owned by `{g['dynamic_group_owner']}`")
    return sections, notes


# -------------------------------------------------------------- keystoneauth


def auth_plugins() -> tuple[dict, set[str]]:
    from keystoneauth1 import loading

    out = {}
    dists = set()
    eps = {ep.name: ep for ep in md.entry_points(group="keystoneauth1.plugin")}
    for name in sorted(loading.get_available_plugin_names()):
        loader = loading.get_plugin_loader(name)
        if name in eps and eps[name].dist is not None:
            dists.add(eps[name].dist.name)
        opts = {}
        for o in loader.get_options():
            oo = o._to_oslo_opt()
            opts[oo.dest] = reduce_opt(_entry(oo), None)
        out[name] = opts
    return out, dists


def _type_name(t) -> str:
    from oslo_config import generator

    if t is bool:
        return "boolean value"
    return generator._format_type_name(t)


# ---------------------------------------------------------------------- JSON


def dump(obj, indent: int = 0) -> str:
    """JSON with one option per line: nested objects are broken into lines down to the
    options (depth 4: files > id > sections > section > option), whose fields stay on
    one line. Keys sorted below "files"."""
    return _dump(obj, 0, ())


def _dump(obj, depth: int, path: tuple) -> str:
    pad = "  " * depth
    inline = _is_leaf(path)
    if isinstance(obj, dict) and obj and not inline:
        keys = list(obj.keys())
        if path and path[0] in ("files", "auth_plugins", "packages"):
            keys = sorted(keys)
        items = [f'{pad}  {json.dumps(k)}: {_dump(obj[k], depth + 1, path + (k,))}' for k in keys]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def _is_leaf(path: tuple) -> bool:
    # files.<id>.sections.<section>.<option>, files.<id>.namespaces, auth_plugins.<p>.<option>
    if not path:
        return False
    if path[0] == "files":
        return len(path) == 5 or (len(path) == 3 and path[2] == "namespaces")
    if path[0] == "auth_plugins":
        return len(path) == 3
    if path[0] == "packages":
        return len(path) == 2
    return len(path) == 1


# ---------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("release")
    ap.add_argument("--cache", type=Path, default=None, help="default: <repo>/.cache/oslo-schema/RELEASE")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-project-check", action="store_true", help="skip the comparison with the projects' generator configs")
    args = ap.parse_args()
    cache = args.cache or (REPO / ".cache" / "oslo-schema" / args.release)
    req = HERE / "releases" / f"{args.release}.txt"
    if not req.is_file():
        raise SystemExit(f"error: {req} not found")

    files = oslo_files()
    providers = namespace_providers()
    missing = [(fid, ns) for fid, nss in files.items() for ns in nss if ns not in providers]
    if missing:
        for fid, ns in missing:
            print(f"error: namespace {ns!r} of templates/_common/oslo/{fid}.toml is not provided by any "
                  f"installed package (release {args.release}): no 'oslo.config.opts' entry point", file=sys.stderr)
        return 1

    problems = 0
    if not args.no_project_check:
        t = time.monotonic()
        theirs = project_namespaces(cache, files)
        for fid, nss in files.items():
            if theirs.get(fid) is None:
                log(f"warning: {fid}: the project's own generator config was not found; namespaces not compared")
                continue
            lacking = [n for n in theirs[fid] if n not in nss]
            extra = [n for n in nss if n not in theirs[fid]]
            project, suffix = PROJECT_CONFIGS[fid]
            for n in lacking:
                log(f"warning: {fid}: {project}'s {suffix} lists namespace {n!r}, which templates/_common/oslo/{fid}.toml lacks")
            if extra:
                log(f"note: {fid}: namespaces beyond {project}'s {suffix}: {', '.join(extra)}")
        log(f"project generator configs compared in {time.monotonic() - t:.1f}s")

    t = time.monotonic()
    out_files: dict[str, dict] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(run_generator, nss): fid for fid, nss in files.items()}
        for fut in concurrent.futures.as_completed(futs):
            fid = futs[fut]
            try:
                data, auth_groups = fut.result()
            except Exception as e:  # noqa: BLE001
                print(f"error: {fid}: {e}", file=sys.stderr)
                problems += 1
                continue
            sections, notes = reduce_file(data)
            for g in auth_groups:
                # the service registers them at import time; the sample leaves them out
                for name, fields in auth_common_opts(g).items():
                    sections[g].setdefault(name, fields)
                log(f"note: {fid}: [{g}] takes auth_type/auth_section (registered at import time, "
                    "not in the generator's list): added")
            for n in notes:
                log(f"note: {fid}: {n}")
            out_files[fid] = {"namespaces": files[fid], "sections": sections}
            log(f"{fid}: {len(sections)} sections, {sum(len(s) for s in sections.values())} options")
    if problems:
        return 1
    log(f"oslo-config-generator: {time.monotonic() - t:.1f}s")

    plugins, plugin_dists = auth_plugins()
    log(f"keystoneauth plugins: {len(plugins)} ({', '.join(plugins)})")

    # the installed versions of every package that defines options: the namespaces'
    # providers, the keystoneauth plugins' providers, and every package the release
    # file pins
    names = {providers[ns].metadata["Name"] for nss in files.values() for ns in nss} | plugin_dists
    for line in req.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==", line):
            names.add(m[1])
    packages = {}
    for n in names:
        try:
            d = md.distribution(n)
        except md.PackageNotFoundError:
            continue
        packages[d.metadata["Name"]] = d.version

    schema = {
        "release": args.release,
        "generated_by": f"scripts/oslo-schema/generate.sh {args.release}",
        "packages": packages,
        "files": {fid: {"namespaces": v["namespaces"],
                        **({"project": PROJECT_CONFIGS[fid][0]} if fid in PROJECT_CONFIGS else {}),
                        "sections": {s: dict(sorted(o.items())) for s, o in sorted(v["sections"].items())}}
                  for fid, v in sorted(out_files.items())},
        "auth_plugins": {p: dict(sorted(o.items())) for p, o in sorted(plugins.items())},
    }
    text = dump(schema) + "\n"
    json.loads(text)  # the writer's output is JSON
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    dest = SCHEMA_DIR / f"{args.release}.json"
    dest.write_text(text)
    nopts = sum(len(o) for f in out_files.values() for o in f["sections"].values())
    log(f"wrote {dest.relative_to(REPO)}: {len(text) // 1024} KiB, {len(out_files)} files, {nopts} options")
    return 0


if __name__ == "__main__":
    sys.exit(main())
