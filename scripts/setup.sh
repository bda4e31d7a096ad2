#!/usr/bin/env bash
# The one setup step of the test suite (run by `npm test` through `npm run setup`, and by
# .ci/run). Idempotent: it installs only what is missing, starts only what is not running,
# and says what it does. A fresh build machine runs no service, so everything the tests
# need is installed and started from here:
#   - Redis (Debian's redis-server), serving the suite on 127.0.0.1:6379; tests that
#     restart Redis or need a cluster start their own servers from the same binary;
#   - MinIO, built from its Go module into GOPATH/bin (only the first run pays the build);
#     each test file starts its own MinIO on a free port (test/support/minio.ts);
#   - Chromium (Debian) for the dashboard test;
#   - ElasticMQ (an SQS-compatible server) from Maven Central, run on the machine's Java by
#     the listener's SQS test (test/support/elasticmq.ts): Maven resolves it and its
#     dependencies (scripts/elasticmq/pom.xml) and the classpath goes to .tmp/;
#   - a Python virtual environment (test/python/.venv) with the pinned packages of
#     test/python/requirements.txt: the provider's SDK and BullMQ's Python client.
# Anything that cannot be installed gets one line naming it and how to get it; the exit
# code is then 1. `setup.sh redis` sets up Redis alone (what `npm run demo` needs).
set -uo pipefail
only=${1:-all}
cd "$(dirname "$0")/.."

# MinIO's community edition is distributed as source. The Go module proxy serves this
# pseudo-version of github.com/minio/minio (a commit of 2026-02-12); its RELEASE.* tags are
# not semantic versions, so `go install ...@RELEASE...` does not resolve through the proxy.
MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
REDIS_PORT=${SETUP_REDIS_PORT:-6379}
VENV=test/python/.venv
REQUIREMENTS=test/python/requirements.txt

say() { echo "setup: $*"; }
missing=0
cannot() { echo "setup: MISSING $1: $2" >&2; missing=1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

apt_install() {
  # $@: Debian packages
  say "installing $* from Debian's packages"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/tmp/mm-ingest-apt.log 2>&1; then
    # the package lists of a fresh machine may be empty or stale
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>/tmp/mm-ingest-apt.log 2>&1
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>/tmp/mm-ingest-apt.log 2>&1
  fi
}

need_debian=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_debian+=(redis-server)
[ "$only" = redis ] || command -v chromium >/dev/null || need_debian+=(chromium)
if [ ${#need_debian[@]} -gt 0 ]; then
  if ! apt_install "${need_debian[@]}"; then
    for p in "${need_debian[@]}"; do cannot "$p" "install it with: sudo apt-get install -y $p (apt-get's output: /tmp/mm-ingest-apt.log)"; done
  fi
fi

# Redis for the suite. BullMQ needs noeviction; no persistence: the suite's data is throwaway.
if command -v redis-cli >/dev/null; then
  if redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "Redis answers on 127.0.0.1:$REDIS_PORT ($(redis-cli -p "$REDIS_PORT" info server | tr -d '\r' | sed -n 's/^redis_version://p'))"
  else
    say "starting redis-server on 127.0.0.1:$REDIS_PORT"
    mkdir -p /tmp/mm-ingest-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir /tmp/mm-ingest-redis \
      --save '' --appendonly no --maxmemory-policy noeviction --logfile /tmp/mm-ingest-redis/redis.log
    for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || cannot "Redis on port $REDIS_PORT" "redis-server did not start; see /tmp/mm-ingest-redis/redis.log"
  fi
fi

[ "$only" = redis ] && exit $missing

# MinIO from its Go module, cached in GOPATH/bin. (Go's own install puts it in
# /usr/local/go/bin, which a non-login shell may not have on its PATH.)
command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"; }
if command -v go >/dev/null; then
  gobin="$(go env GOPATH)/bin"
  built=""
  [ -x "$gobin/minio" ] && built=$(go version -m "$gobin/minio" 2>/dev/null | awk '$1 == "mod" && $2 == "'"$MINIO_MODULE"'" { print $3 }')
  if [ "$built" = "$MINIO_VERSION" ]; then
    say "MinIO $MINIO_VERSION is built ($gobin/minio)"
  else
    say "building MinIO $MINIO_VERSION with go install (the first build takes several minutes; later runs reuse it)"
    start=$(date +%s)
    if go install "$MINIO_MODULE@$MINIO_VERSION" >/tmp/mm-ingest-minio-build.log 2>&1; then
      say "MinIO built in $(( $(date +%s) - start )) s"
    else
      cannot "MinIO" "go install $MINIO_MODULE@$MINIO_VERSION failed; see /tmp/mm-ingest-minio-build.log"
    fi
  fi
else
  cannot "Go" "MinIO is built with Go: install Go 1.24 or later (https://go.dev/doc/install) and run npm test again"
fi

# ElasticMQ for the listener's SQS test: Maven puts the jars in its local repository and
# writes their classpath; the test starts org.elasticmq.server.Main with it.
ELASTICMQ_CLASSPATH=.tmp/elasticmq.classpath
if command -v java >/dev/null && command -v mvn >/dev/null; then
  have_all=0
  if [ -s "$ELASTICMQ_CLASSPATH" ]; then
    have_all=1
    for jar in $(tr ':' ' ' <"$ELASTICMQ_CLASSPATH"); do [ -f "$jar" ] || have_all=0; done
  fi
  if [ "$have_all" = 1 ] && [ "$ELASTICMQ_CLASSPATH" -nt scripts/elasticmq/pom.xml ]; then
    say "ElasticMQ is resolved ($ELASTICMQ_CLASSPATH)"
  else
    say "resolving ElasticMQ from Maven Central (scripts/elasticmq/pom.xml)"
    mkdir -p .tmp
    if mvn -q -B -f scripts/elasticmq/pom.xml dependency:build-classpath -Dmdep.outputFile="$PWD/$ELASTICMQ_CLASSPATH" >/tmp/mm-ingest-elasticmq.log 2>&1; then
      say "ElasticMQ resolved"
    else
      cannot "ElasticMQ" "mvn could not resolve org.elasticmq:elasticmq-server_3; see /tmp/mm-ingest-elasticmq.log"
    fi
  fi
else
  cannot "Java and Maven" "the SQS test runs ElasticMQ on Java: sudo apt-get install -y default-jre-headless maven"
fi

# Python packages for the cross-language tests, pinned, in a virtual environment.
if command -v python3 >/dev/null; then
  want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
  if [ "$want" = "$have" ] && [ -x "$VENV/bin/python" ]; then
    say "Python packages are installed ($VENV)"
  else
    say "installing the Python packages of $REQUIREMENTS into $VENV"
    if python3 -m venv "$VENV" >/tmp/mm-ingest-pip.log 2>&1 \
      && "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" >>/tmp/mm-ingest-pip.log 2>&1; then
      echo "$want" >"$VENV/.requirements.sha256"
    else
      cannot "Python packages" "pip could not install $REQUIREMENTS; see /tmp/mm-ingest-pip.log"
    fi
  fi
else
  cannot "Python 3" "install it with: sudo apt-get install -y python3 python3-venv"
fi

exit $missing
