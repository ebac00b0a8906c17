#!/usr/bin/env python3
"""reprise as a user gets it: stages `meson install` of the project's build folder into a private
temporary folder (never the build folder's prefix, so it races no other test), then checks:

  - the staged include folder holds exactly the public headers, no internal/ folder, and no header
    includes fmt, libevent, Boost, CLI11, msgpack, zstd, libsodium or an internal/ header;
  - every public header compiles alone (-std=c++20 -Wall -Wextra -Wpedantic -Werror, the staged
    include folder only);
  - libreprise.so's soname, and what reprise.pc says (cflags, libs, private requirements);
  - tests/install/consumer, a program outside the tree, builds against the staged install with
    meson + pkg-config (shared and static libreprise) and with CMake's find_package (shared and
    static), and each build records a live run (--record) and replays it (--replay) successfully.

A --destdir install keeps the configured prefix inside reprise.pc, so pkg-config is pointed at
the staged tree with PKG_CONFIG_SYSROOT_DIR; the CMake package finds its prefix from its own place.
Usage (meson runs it: tests/install/meson.build):
  install_test.py --build-root B --source-root S --cxx 'c++' --sanitize none --header runtime/task.hpp ...
Exit 77 (skipped) in sanitizer builds: a consumer would have to link the sanitizer runtimes too.
Set REPRISE_KEEP_INSTALL_TMP=1 to keep the temporary folder.
"""

import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'support'))
from reprise_test import NO_DIVERGENCE, Failure, require  # noqa: E402

STEP_TIMEOUT = 240  # seconds, for any one command

FORBIDDEN_INCLUDES = re.compile(r'#\s*include\s*[<"](fmt/|event2/|event\.h|boost/|CLI/|msgpack|zstd|sodium|[^>"]*internal/)')


def run(cmd, env=None, cwd=None, expect_rc=0, quiet=False):
    """Runs cmd, printing it and its output; fails unless it exits with expect_rc."""
    print('$ ' + ' '.join(shlex.quote(str(c)) for c in cmd) + (f'   (in {cwd})' if cwd else ''), flush=True)
    try:
        p = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=STEP_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise Failure(f'timed out after {STEP_TIMEOUT} s: {cmd[0]}\n{e.output or ""}')
    if not quiet or p.returncode != expect_rc:
        out = p.stdout.rstrip()
        if out:
            print('\n'.join('    ' + line for line in out.splitlines()), flush=True)
    require(p.returncode == expect_rc, f'{Path(str(cmd[0])).name} exited {p.returncode}, expected {expect_rc}')
    return p.stdout


def pc_variables(pc_file):
    """The variables of a .pc file, expanded (${name} references to earlier variables)."""
    values = {}
    for line in pc_file.read_text().splitlines():
        m = re.match(r'^([A-Za-z_][A-Za-z0-9_.]*)=(.*)$', line)
        if m:
            values[m.group(1)] = re.sub(r'\$\{([^}]+)\}', lambda r: values.get(r.group(1), ''), m.group(2).strip())
    return values


def stage_install(build_root, destdir):
    run(['meson', 'install', '-C', build_root, '--no-rebuild', '--quiet', '--destdir', destdir])
    pcs = list(destdir.rglob('pkgconfig/reprise.pc'))
    require(len(pcs) == 1, f'expected one reprise.pc in the staged install, found {pcs}')
    pc = pcs[0]
    variables = pc_variables(pc)
    prefix = Path(str(destdir) + variables['prefix'])
    libdir = Path(str(destdir) + variables['libdir'])
    includedir = Path(str(destdir) + variables['includedir'])
    require(libdir == pc.parent.parent, f'reprise.pc is not in {libdir}/pkgconfig')
    print(f'staged: prefix {prefix}, libdir {libdir}, includedir {includedir}', flush=True)
    return pc, prefix, libdir, includedir


def check_binaries(prefix):
    installed = sorted(p.name for p in (prefix / 'bin').iterdir())
    print(f'staged bin/: {" ".join(installed)}', flush=True)
    wanted = {'reprise', 'reprise-check', 'reprise-kv', 'reprise-raft'}
    require(wanted <= set(installed), f'bin/ should hold {sorted(wanted)}, holds {installed}')
    require('reprise-echo' not in installed, 'bin/ holds reprise-echo: the echo example is not installed')
    # `reprise debug` finds the gdb extension at <datadir>/reprise/gdb, from bin/ (a moved install too).
    gdb_dir = prefix / 'share' / 'reprise' / 'gdb'
    require((gdb_dir / 'reprise_printers.py').is_file(), f'{gdb_dir} should hold reprise_printers.py')


def check_headers(includedir, expected, cxx, workdir):
    root = includedir / 'reprise'
    require(root.is_dir(), f'no {root}')
    internal = [p for p in root.rglob('*') if p.name == 'internal']
    require(not internal, f'internal folders were installed: {internal}')
    installed = sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())
    require(installed == sorted(expected),
          f'installed headers differ from public_headers:\n  installed {installed}\n  expected {sorted(expected)}')
    for header in installed:
        for n, line in enumerate((root / header).read_text().splitlines(), 1):
            require(not FORBIDDEN_INCLUDES.search(line), f'{header}:{n}: a public header includes {line.strip()!r}')

    def compile_alone(header):
        tu = workdir / (header.replace('/', '_') + '.cpp')
        tu.write_text(f'#include <reprise/{header}>\n')
        cmd = cxx + ['-std=c++20', '-Wall', '-Wextra', '-Wpedantic', '-Werror', f'-I{includedir}',
                     '-c', str(tu), '-o', str(tu.with_suffix('.o'))]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=STEP_TIMEOUT)
        return header, cmd, p

    print(f'compiling each of {len(installed)} public headers alone:', flush=True)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for header, cmd, p in pool.map(compile_alone, installed):
            status = 'ok' if p.returncode == 0 else f'FAILED (exit {p.returncode})'
            print(f'  <reprise/{header}>: {status}', flush=True)
            if p.returncode != 0:
                print('    $ ' + ' '.join(shlex.quote(c) for c in cmd))
                print('\n'.join('    ' + line for line in p.stdout.rstrip().splitlines()), flush=True)
                failed.append(header)
    require(not failed, f'public headers that do not compile alone: {failed}')


def check_library(libdir, version):
    major, minor = version.split('.')[:2]
    soname = f'libreprise.so.{major}.{minor}' if major == '0' else f'libreprise.so.{major}'
    real = libdir / f'libreprise.so.{version}'
    require(real.is_file(), f'no {real}')
    require((libdir / soname).is_symlink(), f'no {soname} link')
    require((libdir / 'libreprise.so').is_symlink(), 'no libreprise.so link')
    require((libdir / 'libreprise.a').is_file(), 'no libreprise.a')
    dynamic = run(['readelf', '-d', real], quiet=True)
    m = re.search(r'\(SONAME\)\s+Library soname: \[([^\]]+)\]', dynamic)
    require(m is not None and m.group(1) == soname, f'soname of {real.name} should be {soname}: {m and m.group(1)}')
    print(f'{real.name}: soname {soname}', flush=True)
    for needed in re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', dynamic):
        require('boost' not in needed, f'libreprise.so needs {needed}: Boost.Context should be linked in')


def check_pkg_config(pc_env, includedir, libdir):
    cflags = run(['pkg-config', '--cflags', 'reprise'], env=pc_env).split()
    require(f'-I{includedir}' in cflags, f'pkg-config --cflags should give -I{includedir}: {cflags}')
    require(not any(f.endswith('/reprise') for f in cflags), f'cflags point inside include/reprise: {cflags}')
    libs = run(['pkg-config', '--libs', 'reprise'], env=pc_env).split()
    require(libs == [f'-L{libdir}', '-lreprise'], f'pkg-config --libs should be -L{libdir} -lreprise: {libs}')
    static_libs = run(['pkg-config', '--static', '--libs', 'reprise'], env=pc_env).split()
    require(static_libs.count('-lboost_context') == 1, f'-lboost_context should appear once: {static_libs}')
    require(not any(f.endswith('.a') or 'CLI11' in f for f in static_libs),
          f'no archive path and no CLI11 in the static libs: {static_libs}')
    require({'-levent_core', '-lfmt', '-lzstd', '-lsodium'} <= set(static_libs),
          f'static libs lack libevent_core, fmt, zstd or sodium: {static_libs}')
    requires = run(['pkg-config', '--print-requires', 'reprise'], env=pc_env).split()
    require(requires == [], f'reprise.pc should require nothing publicly: {requires}')
    private = run(['pkg-config', '--print-requires-private', 'reprise'], env=pc_env).split()
    require(sorted(private) == ['fmt', 'libevent_core', 'libsodium', 'libzstd'],
          f'Requires.private should be fmt, libevent_core, libsodium, libzstd: {private}')


def record_and_replay(exe, workdir, env, name):
    trace = workdir / f'{name}.trace'
    out = run([exe, f'--record={trace}'], env=env, cwd=workdir)
    require('consumer: got echo: hello from the consumer' in out, f'{name}: the live run did not get its echo')
    require(trace.is_file() and trace.stat().st_size > 0, f'{name}: no trace written')
    out = run([exe, f'--replay={trace}'], env=env, cwd=workdir)
    require('consumer: got echo: hello from the consumer' in out, f'{name}: the replay did not print the echo')
    m = re.search(r'reprise: replay done: (\d+) events', out)
    require(m is not None, f'{name}: the replay did not report "replay done"')
    require(NO_DIVERGENCE in out, f'{name}: the replay did not say "{NO_DIVERGENCE}"')
    require(int(m.group(1)) > 5, f'{name}: the trace has only {m.group(1)} events')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--build-root', required=True, type=Path)
    ap.add_argument('--source-root', required=True, type=Path)
    ap.add_argument('--cxx', default='c++', help='the C++ compiler command (split like a shell)')
    ap.add_argument('--sanitize', default='none', help="meson's b_sanitize of the build")
    ap.add_argument('--version', required=True, help="the project's version")
    ap.add_argument('--header', action='append', default=[], help='a public header (DIR/NAME.hpp), repeated')
    args = ap.parse_args()

    if args.sanitize not in ('', 'none'):
        print(f'skipped: a sanitizer build (b_sanitize={args.sanitize}) is not a library to install')
        return 77
    for tool in ('meson', 'pkg-config', 'cmake', 'readelf'):
        require(shutil.which(tool) is not None, f'{tool} is not installed (./dev installs it)')

    cxx = shlex.split(args.cxx)
    consumer_src = args.source_root / 'tests' / 'install' / 'consumer'
    tmp = Path(tempfile.mkdtemp(prefix='reprise-install-test-'))
    try:
        destdir = tmp / 'stage'
        pc, prefix, libdir, includedir = stage_install(args.build_root, destdir)
        check_binaries(prefix)
        check_library(libdir, args.version)
        headers_dir = tmp / 'headers'
        headers_dir.mkdir()
        check_headers(includedir, args.header, cxx, headers_dir)

        base_env = {k: v for k, v in os.environ.items()
                    if k not in ('LD_LIBRARY_PATH', 'PKG_CONFIG_PATH', 'PKG_CONFIG_SYSROOT_DIR', 'CMAKE_PREFIX_PATH')}
        base_env['CXX'] = args.cxx
        # pkg-config: the staged .pc still says the configured prefix; the sysroot maps it to the stage.
        pc_env = dict(base_env, PKG_CONFIG_PATH=str(pc.parent), PKG_CONFIG_SYSROOT_DIR=str(destdir))
        check_pkg_config(pc_env, includedir, libdir)
        run_env = dict(base_env, LD_LIBRARY_PATH=str(libdir))

        builds = []
        for link in ('shared', 'static'):
            b = tmp / f'meson-{link}'
            run(['meson', 'setup', b, consumer_src, f'-Dlink={link}'], env=pc_env, quiet=True)
            run(['meson', 'compile', '-C', b], env=pc_env)
            builds.append((f'meson-{link}', b / 'consumer', link))
        for link in ('shared', 'static'):
            b = tmp / f'cmake-{link}'
            run(['cmake', '-S', consumer_src, '-B', b, f'-DCMAKE_PREFIX_PATH={prefix}',
                 f'-DREPRISE_LINK={link}', '-DCMAKE_BUILD_TYPE=RelWithDebInfo'], env=base_env, quiet=True)
            run(['cmake', '--build', b], env=base_env)
            builds.append((f'cmake-{link}', b / 'consumer', link))

        for name, exe, link in builds:
            require(exe.is_file(), f'{name}: no {exe}')
            ldd = run(['ldd', exe], env=run_env, quiet=True)
            m = re.search(r'libreprise\.so\S*\s+=>\s+(\S+)', ldd)
            if link == 'shared':
                require(m is not None and Path(m.group(1)).parent == libdir,
                      f'{name}: should load libreprise.so from {libdir}: {m and m.group(0)}')
            else:
                require(m is None, f'{name}: linked statically, yet loads {m and m.group(0)}')
            print(f'== {name}: record, then replay ==', flush=True)
            record_and_replay(exe, tmp, run_env, name)
    except Failure as e:
        print(f'FAILED: {e}', flush=True)
        return 1
    finally:
        if os.environ.get('REPRISE_KEEP_INSTALL_TMP'):
            print(f'kept {tmp}')
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print('install test passed: headers, reprise.pc, the CMake package, and 4 consumer builds recorded and replayed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
