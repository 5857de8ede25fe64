#!/bin/sh
# Joins the 6 nodes of the StatefulSet starling-redis into a cluster of 3
# masters with one replica each, unless they already form one.
set -eu
nodes=""
for i in 0 1 2 3 4 5; do
  host="starling-redis-$i.starling-redis"
  until redis-cli -h "$host" ping 2>/dev/null | grep -q PONG; do
    echo "waiting for $host"
    sleep 2
  done
  nodes="$nodes $(getent hosts "$host" | awk 'NR == 1 { print $1 }'):6379"
done
known=$(redis-cli -h starling-redis-0.starling-redis cluster info | tr -d '\r' | awk -F: '$1 == "cluster_known_nodes" { print $2 }')
if [ "${known:-1}" -gt 1 ]; then
  echo "the nodes already form a cluster ($known known)"
  exit 0
fi
# shellcheck disable=SC2086 # one argument per node
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes
