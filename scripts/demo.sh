#!/usr/bin/env bash
# make demo: run the service on the shipped config.toml against a local S3 (moto_server on 127.0.0.1:4566).
set -euo pipefail
cd "$(dirname "$0")/.."

# DEMO_S3_PORT picks another port when 4566 is taken (the service is pointed at it with --endpoint).
port="${DEMO_S3_PORT:-4566}"
endpoint="http://127.0.0.1:$port"
# moto accepts any credentials; real ones, if set, are left alone (they never reach moto's logs or ours).
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-demo}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-demo}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
mkdir -p var local_test_dir

answering() { curl -fs -o /dev/null "$endpoint/moto-api/" 2>/dev/null; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

if ! answering; then
  if port_taken; then
    echo "port $port is taken by another program (not moto_server): run DEMO_S3_PORT=<free port> make demo" >&2
    exit 1
  fi
  command -v moto_server >/dev/null || { echo "moto_server not found: pip install 'moto[server]'" >&2; exit 1; }
  echo "starting moto_server on $endpoint (log: var/moto.log)"
  nohup moto_server -H 127.0.0.1 -p "$port" >var/moto.log 2>&1 &
  moto=$!
  for _ in $(seq 100); do
    answering && break
    # It died (a port taken meanwhile, a broken install): say why now, not after the wait.
    kill -0 "$moto" 2>/dev/null || { echo "moto_server exited at start:" >&2; tail -5 var/moto.log >&2; exit 1; }
    sleep 0.1
  done
  answering || { echo "moto_server did not answer on $endpoint within 10 s; see var/moto.log" >&2; exit 1; }
fi
AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true node scripts/demo-bucket.mjs "$endpoint" sftppush-demo

cat <<MSG

  sftppush demo: drop files into $(pwd)/local_test_dir/ and watch them arrive in s3://sftppush-demo
  list the bucket:  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws --endpoint-url $endpoint s3 ls --recursive s3://sftppush-demo
  ledger status:    bin/sftppush status
  stop:             Ctrl-C

MSG
# A second demo beside this one is refused by the ledger's instance lock (exit 1, naming this one's pid).
exec bin/sftppush watch --config config.toml --endpoint "$endpoint"
