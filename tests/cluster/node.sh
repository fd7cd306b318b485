#!/bin/bash
# PID 1 of one director node of the cluster test (tests/cluster/lab.py), started as
#   ip netns exec NODE unshare --mount --uts --ipc --pid --fork --mount-proc node.sh NODE STATE LOGS AGENTS
# STATE (under the guest's /run) holds the node's "disk": /etc/corosync, /var/lib/corosync,
# /var/lib/pacemaker; LOGS (on the host file system) gets the corosync and pacemaker logs.
# AGENTS (the checkout's contrib/ocf) becomes the OCF provider "lvscheck" in this node's mount
# namespace only: nothing is installed on the machine, and nothing there can change under us.
# The node then runs corosync and pacemakerd (no systemd) and reaps orphans for ever:
# the OCF agent setsid's `lvscheck daemon`, which is reparented here, and the agent's stop
# waits with `kill -0` until it is gone (an unreaped zombie would hang it).
set -u
node=$1 state=$2 logs=$3 agents=$4
hostname "$node"
ocf=/usr/lib/ocf/resource.d
mkdir -p "$state/ocf-orig"
mount --bind "$ocf" "$state/ocf-orig"                   # the machine's providers, reachable
mount -t tmpfs -o mode=755 tmpfs "$ocf"
for d in "$state"/ocf-orig/*/; do
    p=$(basename "$d")
    [ "$p" = lvscheck ] && continue
    mkdir "$ocf/$p" && mount --bind "$d" "$ocf/$p"      # heartbeat (IPaddr2), pacemaker, ...
done
mkdir "$ocf/lvscheck"
install -m 755 "$agents/lvscheck" "$agents/lvscheck-sync" "$ocf/lvscheck/"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm              # libqb's IPC ring buffers
mount --bind "$state/etc-corosync" /etc/corosync
mount --bind "$state/lib-corosync" /var/lib/corosync
mount --bind "$state/lib-pacemaker" /var/lib/pacemaker
mount --bind "$logs/corosync" /var/log/corosync
mount --bind "$logs/pacemaker" /var/log/pacemaker
mount -t tmpfs -o mode=755 tmpfs /run                   # last: $state lives under /run
mkdir -p /run/lvscheck
ip link set lo up
corosync -f >>"$logs/corosync.out" 2>&1 &
for _ in $(seq 150); do corosync-cfgtool -s >/dev/null 2>&1 && break; sleep 0.2; done
echo "$EPOCHREALTIME corosync answers" >>"$logs/node.log"
PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none pacemakerd >>"$logs/pacemakerd.out" 2>&1 &
echo "$EPOCHREALTIME pacemakerd started" >>"$logs/node.log"
while :; do wait; sleep 1; done
