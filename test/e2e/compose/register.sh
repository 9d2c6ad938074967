#!/bin/sh
# Registers the Debezium connectors (PUT is idempotent), then waits until
# each has written the topics of both tables: cdcrecon needs them to exist.
set -eu
connect=http://connect:8083
for c in src tgt; do
	curl -fsS -X PUT -H 'Content-Type: application/json' --data @/connectors/$c.json "$connect/connectors/$c/config" >/dev/null
	echo "connector $c registered"
done
for c in src tgt; do
	for i in $(seq 1 120); do
		topics=$(curl -fsS "$connect/connectors/$c/topics" || true)
		case "$topics" in
		*"$c.public.orders"*"$c.public.customers"* | *"$c.public.customers"*"$c.public.orders"*)
			echo "connector $c: $topics"
			continue 2
			;;
		esac
		sleep 1
	done
	echo "connector $c wrote no topics within 120s: $(curl -fsS "$connect/connectors/$c/status")" >&2
	exit 1
done
