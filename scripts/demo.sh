#!/usr/bin/env bash
# make demo: run the service on the shipped config.toml against a local S3 (moto_server on 127.0.0.1:4566).
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint=http://127.0.0.1:4566
# moto accepts any credentials; real ones, if set, are left alone (they never reach moto's logs or ours).
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-demo}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-demo}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
mkdir -p var local_test_dir

answering() { curl -fs -o /dev/null "$endpoint/moto-api/" 2>/dev/null; }

if ! answering; then
  command -v moto_server >/dev/null || { echo "moto_server not found: pip install 'moto[server]'" >&2; exit 1; }
  echo "starting moto_server on $endpoint (log: var/moto.log)"
  nohup moto_server -H 127.0.0.1 -p 4566 >var/moto.log 2>&1 &
  for _ in $(seq 100); do answering && break; sleep 0.1; done
  answering || { echo "moto_server did not start; see var/moto.log" >&2; exit 1; }
fi
node scripts/demo-bucket.mjs "$endpoint" sftppush-demo

cat <<MSG

  sftppush demo: drop files into $(pwd)/local_test_dir/ and watch them arrive in s3://sftppush-demo
  list the bucket:  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws --endpoint-url $endpoint s3 ls --recursive s3://sftppush-demo
  ledger status:    bin/sftppush status
  stop:             Ctrl-C

MSG
exec bin/sftppush watch --config config.toml
