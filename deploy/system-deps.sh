#!/usr/bin/env bash
# Install the Debian packages distillguard's build and tests need, if missing (idempotent; needs root,
# as on our machines). Used by `make setup` and by .ci/run, so both start from the same base.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)      # Kafka broker
command -v mvn >/dev/null || missing+=(maven)                         # Kafka's jars from Maven Central
command -v promtool >/dev/null || missing+=(prometheus)               # promtool: rules, metrics, PromQL
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)    # amtool: routing tests
command -v chromium >/dev/null || missing+=(chromium)                 # the triage page's browser test
command -v gcc >/dev/null || missing+=(gcc)                            # detectors/_*.c, built by pip install
[ -f /usr/include/hs/hs.h ] || missing+=(libhyperscan-dev)           # detectors/_phrases.c: the phrase scan
command -v valgrind >/dev/null || missing+=(valgrind)                 # make bench: instructions per event
python_bin=$(command -v python3.11 || command -v python3 || true)
if [ -z "$python_bin" ]; then missing+=(python3 python3-venv python3-dev)
else
  "$python_bin" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
  # Python.h for the C extensions (a Debian python needs python3-dev; pyenv builds ship it)
  include=$("$python_bin" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$include/Python.h" ] || missing+=(python3-dev)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: not root; install these Debian packages yourself: ${missing[*]}" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
