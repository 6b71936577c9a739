#!/bin/sh
# Installs the Debian 12 packages opstream needs to build and test, when any
# is missing: apt-get as root, sudo otherwise, else a message naming them.
# A no-op when everything is present.
PACKAGES="${OPSTREAM_DEPS:-gcc libc6-dev make pkg-config librdkafka-dev libavro-dev libhiredis-dev uuid-dev libjansson-dev libcmocka-dev libmicrohttpd-dev redis-server redis-sentinel redis-tools}"
# Packages only the tests need (make test sets OPSTREAM_TEST_DEPS=1):
# prometheus (the real server and promtool, for the monitoring tests) and jq
# (reads the Grafana dashboard).
TEST_PACKAGES="prometheus jq"
if [ -z "${OPSTREAM_DEPS:-}" ] && [ "${OPSTREAM_TEST_DEPS:-0}" = 1 ]; then
    PACKAGES="$PACKAGES $TEST_PACKAGES"
fi

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run="sudo"
else
    echo "deps: these packages are missing and I cannot install them (not root, no sudo):$missing" >&2
    echo "deps: install them with: apt-get install$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$run apt-get update -qq >&2 || { echo "deps: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
$run apt-get install -y -qq --no-install-recommends $missing >&2 || {
    echo "deps: apt-get install failed for:$missing" >&2
    exit 1
}
echo "deps: installed:$missing" >&2
