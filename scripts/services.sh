#!/usr/bin/env bash
# Start the services batch-translate needs on one machine, if they are not running:
# RabbitMQ (with the management plugin, which KEDA's http protocol uses) and, with --postgres, PostgreSQL.
set -euo pipefail

need_postgres=0
[[ "${1:-}" == "--postgres" ]] && need_postgres=1

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "RabbitMQ is not installed. On Debian/Ubuntu: apt-get install rabbitmq-server" >&2
  echo "or point BT_BROKER_URL at a running broker (RabbitMQ >= 3.10)." >&2
  exit 1
fi
if ! rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then
  echo "starting RabbitMQ…"
  rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null 2>&1 || true
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    rabbitmq-diagnostics -q check_running >/dev/null 2>&1 && break
    sleep 1
  done
  rabbitmq-diagnostics -q check_running >/dev/null || { echo "RabbitMQ did not start" >&2; exit 1; }
fi

if [[ $need_postgres == 1 ]]; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    echo "starting PostgreSQL…"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    for _ in $(seq 1 30); do
      pg_isready -h 127.0.0.1 -p 5432 -q && break
      sleep 1
    done
    pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL did not start" >&2; exit 1; }
  fi
fi
