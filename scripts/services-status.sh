#!/usr/bin/env bash
# Prints whether each test service (Kafka, S3 server, Prometheus) runs: `npm run services:status`.
cd "$(dirname "$0")" || exit 1
for service in kafka s3 prometheus; do
  bash "$service.sh" status >/dev/null 2>&1
  case $? in
    0) echo "$service: running" ;;
    1) echo "$service: running, not answering" ;;
    *) echo "$service: stopped" ;;
  esac
done
