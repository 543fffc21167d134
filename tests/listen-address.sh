#!/usr/bin/env bash
# images/listen-address, the address a proxy binds its data port on: a table
# of subnets against a kernel table (fib_trie) with four local addresses,
# broadcast and network entries, then its exec mode on this host.
# Alone: tests/listen-address.sh (no Docker needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/lib.sh
source tests/lib.sh

FIB=$(mktemp)
trap 'rm -f "$FIB"' EXIT
cat >"$FIB" <<'TABLE'
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/8 2 0 2
        +-- 10.0.5.0/24 2 0 2
           |-- 10.0.5.0
              /24 link UNICAST
           |-- 10.0.5.7
              /32 host LOCAL
           |-- 10.0.5.255
              /32 link BROADCAST
        +-- 10.0.9.0/24 2 0 2
           |-- 10.0.9.3
              /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
     |-- 172.18.0.4
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.0.5.7
        /32 host LOCAL
TABLE

# gives SUBNET EXPECTED: prints exactly EXPECTED and succeeds.
gives() { [ "$(images/listen-address "$1" "$FIB" 2>&1)" = "$2" ]; }
# refuses SUBNET CODE MESSAGE: fails with CODE and says MESSAGE.
refuses() {
  local out rc=0
  out=$(images/listen-address "$1" "$FIB" 2>&1) || rc=$?
  [ "$rc" -eq "$2" ] && grep -qF -- "$3" <<<"$out"
}

echo "listen-address: the address inside a subnet"
check "10.0.5.0/24 is 10.0.5.7" gives 10.0.5.0/24 10.0.5.7
check "10.0.9.0/24 is 10.0.9.3" gives 10.0.9.0/24 10.0.9.3
check "host bits in the subnet are ignored" gives 10.0.9.200/24 10.0.9.3
check "a /32 matches its own address" gives 172.18.0.4/32 172.18.0.4
check "a wider subnet gives the first local address in it" gives 10.0.0.0/8 10.0.5.7
check "a broadcast address is not local" refuses 10.0.5.255/32 1 "no address of this container is in 10.0.5.255/32"
check "a subnet with no local address fails" refuses 192.168.0.0/16 1 "no address of this container is in 192.168.0.0/16"
for bad in 10.0.5.0 10.0.5.0/33 10.0.5.0/ 300.0.0.0/8 10.0.5/24 "10.0.5.0/24; id" "" "$(printf '10.0.5.0/24\n10.0.9.0/24')"; do
  check "malformed subnet '${bad//$'\n'/\\n}' is refused" refuses "$bad" 2 "not an IPv4 subnet"
done

echo "listen-address: exec"
# shellcheck disable=SC2016 # expanded by the command listen-address runs
show='printf "%s" "$LISTEN_ADDRESS"'
check "without LISTEN_SUBNET the address is empty (every address)" \
  test "$(env -u LISTEN_SUBNET images/listen-address exec sh -c "$show")" = ""
check "with LISTEN_SUBNET it is this host's address there" \
  test "$(LISTEN_SUBNET=127.0.0.0/8 images/listen-address exec sh -c "$show")" = 127.0.0.1
check "a subnet with no address here stops before the command runs" \
  bash -c '! LISTEN_SUBNET=192.0.2.128/32 images/listen-address exec echo ran 2>/dev/null | grep -q ran'
check "exec without a command is refused" fails sh -c 'images/listen-address exec 2>/dev/null'

report "listen-address"
