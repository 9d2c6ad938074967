#!/bin/sh
# Subscribes the target to the source's publication, once: the initial
# copy brings the source's rows, then every change follows. The hosts and
# ports are the compose services' unless set (the e2e suite runs this
# script against local clusters).
set -eu
: "${SOURCE_HOST:=source}" "${SOURCE_PORT:=5432}" "${TARGET_HOST:=target}" "${TARGET_PORT:=5432}"
target() { psql -h "$TARGET_HOST" -p "$TARGET_PORT" -U postgres -d shop -v ON_ERROR_STOP=1 "$@"; }
if [ "$(target -tAc "SELECT 1 FROM pg_subscription WHERE subname = 'shop_sub'")" = 1 ]; then
	echo "subscription shop_sub exists"
	exit 0
fi
target -c "CREATE SUBSCRIPTION shop_sub CONNECTION 'host=$SOURCE_HOST port=$SOURCE_PORT dbname=shop user=postgres password=postgres' PUBLICATION shop_pub"
echo "target subscribed to the source"
