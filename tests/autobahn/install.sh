#!/usr/bin/env bash
# Installs the Autobahn|Testsuite fuzzing client (wstest) into a private prefix.
#
# wstest needs Python 2.7. It is taken from pyenv (the machines here ship 2.7.18) or any
# python2.7 on PATH; failing that, from Debian bullseye's packages, downloaded with a private
# apt state and unpacked with dpkg -x, so the system's apt setup is left alone. The Python
# packages come from PyPI, pinned. Idempotent: a second run returns at once.
#
# usage: install.sh            env: AUTOBAHN_PREFIX (default $HOME/.cache/wsecho-autobahn)
set -euo pipefail

PREFIX="${AUTOBAHN_PREFIX:-$HOME/.cache/wsecho-autobahn}"
VERSION=25.10.1
say() { printf '[autobahn install] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"
if [[ -x "$PREFIX/bin/wstest" ]] && "$PREFIX/bin/wstest" --autobahnversion 2>/dev/null | grep -q "$VERSION"; then
  say "wstest $VERSION already in $PREFIX"
  exit 0
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1 PYTHONNOUSERSITE=1
unset PYTHONHOME PYTHONPATH

# 1. A Python 2.7 with ssl and zlib.
find_python2() {
  local candidate
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 "$(command -v python2.7 || true)"; do
    [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c 'import ssl, zlib' 2>/dev/null \
      && { echo "$candidate"; return 0; }
  done
  return 1
}
LIBPATH=""
if ! PYTHON2="$(find_python2)"; then
  # Debian route: bullseye is the last Debian release with python2.7.
  ROOT="$PREFIX/py2root"
  LIBPATH="$ROOT/usr/lib/$(uname -m)-linux-gnu"
  PYTHON2="$ROOT/usr/bin/python2.7"
  if ! LD_LIBRARY_PATH="$LIBPATH" "$PYTHON2" -c 'import ssl, zlib' 2>/dev/null; then
    MIRROR="$(grep -rhoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null | head -n1 | tr -d ' ' | sed 's:/$::')"
    [[ -n "$MIRROR" ]] || die "no python2.7 and no Debian mirror configured"
    APT="$PREFIX/apt"; mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/debs"
    KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'deb [signed-by=%s] %s bullseye main\ndeb [signed-by=%s] %s-security bullseye-security main\n' \
      "$KEYRING" "$MIRROR" "$KEYRING" "$MIRROR" > "$APT/sources.list"
    OPTS=(-o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache" -o "Dir::Etc::SourceList=$APT/sources.list"
          -o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::State::status=/dev/null" -o "APT::Sandbox::User=root"
          -o "Acquire::Languages=none")
    say "no python2.7 here: fetching Debian bullseye's"
    apt-get -q "${OPTS[@]}" update >&2 || die "apt-get update for bullseye failed"
    (cd "$APT/debs" && apt-get -q "${OPTS[@]}" download python2.7-minimal libpython2.7-minimal \
      libpython2.7-stdlib libpython2.7 libssl1.1 libffi7 >&2) || die "apt-get download failed"
    rm -rf "$ROOT"; mkdir -p "$ROOT"
    for deb in "$APT"/debs/*.deb; do dpkg -x "$deb" "$ROOT"; done
    LD_LIBRARY_PATH="$LIBPATH" "$PYTHON2" -c 'import ssl, zlib' || die "bullseye's python2.7 does not run"
  fi
fi
py2() { LD_LIBRARY_PATH="$LIBPATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$PYTHON2" -s "$@"; }
say "python 2.7: $PYTHON2"

# 2. A virtualenv, made with virtualenv 20.15.1 (the last for 2.7), which pip 20.3.4 (the last
#    pip for 2.7, run straight from its wheel) installs into a bootstrap directory.
VENV="$PREFIX/venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  rm -rf "$PREFIX/bootstrap" "$VENV"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 2.7 -d "$PREFIX/wheels" pip==20.3.4 >&2 \
    || die "downloading pip 20.3.4 failed"
  echo "217ae5161a0e08c0fb873858806e3478c9775caffce5168b50ec885e358c199d  $PREFIX/wheels/pip-20.3.4-py2.py3-none-any.whl" \
    | sha256sum -c --status || die "pip wheel checksum mismatch"
  py2 "$PREFIX/wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install -q --no-cache-dir --no-warn-script-location \
    --target "$PREFIX/bootstrap" virtualenv==20.15.1 >&2 || die "installing virtualenv failed"
  VIRTUALENV_OVERRIDE_APP_DATA="$PREFIX/virtualenv-data" PYTHONPATH="$PREFIX/bootstrap" \
    py2 -m virtualenv --no-periodic-update "$VENV" >&2 || die "virtualenv failed"
fi

# 3. The suite, pinned (autobahntestsuite's sdist declares no requirements, so they are
#    listed here with their transitive dependencies).
cat > "$PREFIX/requirements.txt" <<REQ
autobahntestsuite==$VERSION
autobahn[twisted]==0.10.9
Twisted==19.10.0
txaio==2.1.0
cryptography==3.3.2
pyOpenSSL==19.1.0
service_identity==18.1.0
zope.interface==4.6.0
jinja2==2.11.3
markupsafe==1.1.1
Werkzeug==1.0.1
klein==17.10.0
unittest2==1.1.0
six==1.16.0
incremental==16.10.1
setuptools==44.0.0
Automat==22.10.0
attrs==21.4.0
hyperlink==21.0.0
idna==2.10
PyHamcrest==1.10.1
constantly==15.1.0
pyasn1==0.5.1
pyasn1-modules==0.3.0
cffi==1.15.1
pycparser==2.21
enum34==1.1.10
ipaddress==1.0.23
typing==3.10.0.0
linecache2==1.0.0
traceback2==1.4.0
REQ
say "installing the suite from PyPI"
LD_LIBRARY_PATH="$LIBPATH" "$VENV/bin/python" -s -m pip install -q --no-cache-dir --prefer-binary \
  --only-binary cryptography,cffi -r "$PREFIX/requirements.txt" >&2 || die "pip install failed"
# The C UTF-8 validator makes the suite's own side several times faster; optional.
LD_LIBRARY_PATH="$LIBPATH" "$VENV/bin/python" -s -m pip install -q --no-cache-dir wsaccel==0.6.3 ujson==2.0.3 >&2 \
  || say "warning: wsaccel/ujson did not install; the suite runs slower without them"

mkdir -p "$PREFIX/bin"
cat > "$PREFIX/bin/wstest" <<WRAP
#!/bin/sh
unset PYTHONHOME PYTHONPATH
export PYTHONNOUSERSITE=1 LD_LIBRARY_PATH="$LIBPATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$VENV/bin/python" -s "$VENV/bin/wstest" "\$@"
WRAP
chmod +x "$PREFIX/bin/wstest"
"$PREFIX/bin/wstest" --autobahnversion >&2 || die "wstest does not start"
say "done: $PREFIX/bin/wstest"
