#!/bin/sh
# Subscribes the target to the source's publication, once: the initial
# copy brings the source's rows, then every change follows.
set -eu
exists=$(psql -h target -U postgres -d shop -tAc "SELECT 1 FROM pg_subscription WHERE subname = 'shop_sub'")
if [ "$exists" = 1 ]; then
	echo "subscription shop_sub exists"
	exit 0
fi
psql -h target -U postgres -d shop -v ON_ERROR_STOP=1 \
	-c "CREATE SUBSCRIPTION shop_sub CONNECTION 'host=source port=5432 dbname=shop user=postgres password=postgres' PUBLICATION shop_pub"
echo "target subscribed to the source"
