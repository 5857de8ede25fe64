#!/bin/sh
# Starts one Redis Cluster node. The cluster remembers its peers by IP in
# nodes.conf, and a pod gets a new IP whenever it is recreated: after all
# pods restarted at once nobody could reach anybody. So first point every
# peer's entry at the current IP of the hostname stored beside it (Redis 7
# keeps cluster-announce-hostname there); a peer not resolvable yet keeps
# its old address and gossip corrects it later.
set -eu
set -f
conf=/data/nodes.conf
if [ -s "$conf" ]; then
  : > "$conf.new"
  while IFS= read -r line; do
    set -- $line
    addr=${2:-}
    host=${addr#*,}
    host=${host%%,*}
    if [ "${1:-}" != vars ] && [ "$host" != "$addr" ] && [ -n "$host" ]; then
      ip=$(getent hosts "$host" | awk 'NR == 1 { print $1 }')
      if [ -n "$ip" ]; then
        line=$(printf '%s\n' "$line" | awk -v a="$ip:${addr#*:}" '{ $2 = a; print }')
      fi
    fi
    printf '%s\n' "$line" >> "$conf.new"
  done < "$conf"
  mv "$conf.new" "$conf"
fi
exec redis-server /etc/redis/redis.conf --cluster-announce-hostname "$POD_NAME.starling-redis"
