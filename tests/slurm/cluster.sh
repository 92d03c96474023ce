#!/usr/bin/env bash
# A throwaway one-node SLURM cluster on 127.0.0.1 (with a fake GPU) for skyquilt's tests.
#
#   tests/slurm/cluster.sh start    install (if missing) and start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh stop     stop them by PID, restore /etc/slurm, leave the machine as found
#   tests/slurm/cluster.sh status   print the state (exit 0 when the cluster answers)
#
# Needs root (it installs Debian's slurmctld slurmd slurm-client munge with apt-get when they are
# missing, and writes /etc/slurm/slurm.conf: the plugin's job-step runner strips SLURM_CONF).
# Environment (all optional):
#   SKYQUILT_SLURM_DIR        state/spool/log dir            (default /tmp/skyquilt-slurm)
#   SKYQUILT_SLURM_PARTITIONS comma-separated partitions, all on the one node; the first is the
#                             default                        (default debug)
#   SKYQUILT_SLURM_GPUS       fake GPUs on the node, 1..5    (default 2)
#   SKYQUILT_SLURM_GPU_TYPE   their GRES type / GPU model    (default fake: --gpus=fake:1 works too)
#   SKYQUILT_SLURM_CTLD_PORT / SKYQUILT_SLURM_SLURMD_PORT    (default 6817 / 6818)
#   SKYQUILT_SLURM_MIN_JOB_AGE  seconds finished jobs stay in squeue (default 900, must be >= 600)
#   SKYQUILT_SLURM_START_TIMEOUT  seconds to wait for an idle node   (default 60)
#   SKYQUILT_SLURM_KEEP_LOGS=1  `stop` keeps the state dir (daemon logs) instead of removing it
#   SKYQUILT_SLURM_ACCOUNTING=1 with accounting storage: also installs Debian's mariadb-server and
#                             slurmdbd, runs a private MariaDB (data in the state dir) and slurmdbd,
#                             AccountingStorageEnforce=associations (default 0: no accounting)
#   SKYQUILT_SLURM_ACCOUNTS   with accounting: accounts the user running `start` may charge
#                             (comma-separated; default skyquilt-test)
#   SKYQUILT_SLURM_DB_PORT / SKYQUILT_SLURM_DBD_PORT          (default 3307 / 6819)
# `start` prints KEY=VALUE lines on stdout (PARTITION, PARTITIONS, NODE, CPUS, REAL_MEMORY, GPUS,
# GPU_TYPE, STATE_DIR);
# everything else goes to stderr.
set -euo pipefail

STATE_DIR=${SKYQUILT_SLURM_DIR:-/tmp/skyquilt-slurm}
PARTITIONS=${SKYQUILT_SLURM_PARTITIONS:-debug}
PARTITION=${PARTITIONS%%,*}
GPUS=${SKYQUILT_SLURM_GPUS:-2}
GPU_TYPE=${SKYQUILT_SLURM_GPU_TYPE:-fake}
CTLD_PORT=${SKYQUILT_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SKYQUILT_SLURM_SLURMD_PORT:-6818}
MIN_JOB_AGE=${SKYQUILT_SLURM_MIN_JOB_AGE:-900}
START_TIMEOUT=${SKYQUILT_SLURM_START_TIMEOUT:-60}
ACCOUNTING=${SKYQUILT_SLURM_ACCOUNTING:-0}
ACCOUNTS=${SKYQUILT_SLURM_ACCOUNTS:-skyquilt-test}
DB_PORT=${SKYQUILT_SLURM_DB_PORT:-3307}
DBD_PORT=${SKYQUILT_SLURM_DBD_PORT:-6819}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETC=/etc/slurm
MARKER="# skyquilt-test-cluster"
STATE_FILE=$STATE_DIR/state.env

log() { echo "cluster.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() { # alive PID COMM: the process exists and is the expected program (guards reused PIDs)
    local pid=$1 comm=$2
    [[ -n $pid && -d /proc/$pid ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm"* ]]
}

kill_pid() { # kill_pid PID COMM: TERM, wait up to 10 s, then KILL
    local pid=$1 comm=$2 i
    alive "$pid" "$comm" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        alive "$pid" "$comm" || { log "stopped $comm (pid $pid)"; return 0; }
        sleep 0.2
    done
    log "$comm (pid $pid) ignored TERM; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
}

ours() { [[ -f $1 ]] && head -n 1 "$1" | grep -q "^$MARKER"; }

fill() { # fill TEMPLATE OUT
    sed -e "s|@NODE@|$NODE|g" -e "s|@STATE_DIR@|$STATE_DIR|g" \
        -e "s|@CPUS@|$CPUS|g" -e "s|@REAL_MEMORY@|$REAL_MEMORY|g" -e "s|@GPUS@|$GPUS|g" -e "s|@GPU_TYPE@|$GPU_TYPE|g" \
        -e "s|@DEF_MEM_PER_CPU@|$DEF_MEM_PER_CPU|g" -e "s|@MIN_JOB_AGE@|$MIN_JOB_AGE|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" "$1" >"$2"
}

install_packages() {
    local missing=() p
    local wanted=(slurmctld slurmd slurm-client munge)
    ((ACCOUNTING)) && wanted+=(slurmdbd mariadb-server)
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} (apt-get, --no-install-recommends)"
    # Keep the packages' maintainer scripts from starting daemons of their own.
    local policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >&2 || rc=$?
    ((policy_added)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (rc=$rc)"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_works; then
        log "using the munged that is already running"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
        chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
        echo "CREATED_MUNGE_KEY=1" >>"$STATE_FILE"
    fi
    if [[ ! -d /run/munge ]]; then
        mkdir -p /run/munge
        echo "CREATED_RUN_MUNGE=1" >>"$STATE_FILE"
    fi
    chown munge:munge /run/munge && chmod 0755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged # daemonises and writes /run/munge/munged.pid
    local i
    for i in $(seq 1 50); do
        [[ -s /run/munge/munged.pid ]] && munge_works && break
        sleep 0.1
    done
    munge_works || die "munged did not come up"
    echo "MUNGED_PID=$(cat /run/munge/munged.pid)" >>"$STATE_FILE"
    log "started munged (pid $(cat /run/munge/munged.pid))"
}

install_config() { # install_config NAME: back up a foreign file once, then write ours
    local name=$1
    if [[ -e $ETC/$name || -L $ETC/$name ]] && ! ours "$ETC/$name"; then
        cp -a "$ETC/$name" "$STATE_DIR/backup.$name"
        echo "BACKUP_$(echo "$name" | tr '.a-z' '_A-Z')=1" >>"$STATE_FILE"
        log "backed up the existing $ETC/$name"
        rm -f "$ETC/$name"
    fi
    cp "$STATE_DIR/$name" "$ETC/$name"
    chmod 0644 "$ETC/$name"
}

start_database() { # a private MariaDB in the state dir, on 127.0.0.1:$DB_PORT, for slurmdbd
    local db=$STATE_DIR/mysql socket=$STATE_DIR/mysqld.sock i
    mariadb-install-db --user=root --datadir="$db" --auth-root-authentication-method=socket \
        --skip-test-db >"$STATE_DIR/mariadb-install.log" 2>&1
    setsid mariadbd --user=root --datadir="$db" --socket="$socket" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --pid-file="$STATE_DIR/mariadbd.pid" \
        --log-error="$STATE_DIR/mariadbd.log" </dev/null >/dev/null 2>&1 &
    for i in $(seq 1 100); do
        mariadb-admin --socket="$socket" ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    wait_pidfile "$STATE_DIR/mariadbd.pid" mariadbd MARIADBD_PID
    local host
    for host in localhost 127.0.0.1; do
        mariadb --socket="$socket" -e "CREATE USER 'slurm'@'$host' IDENTIFIED BY 'skyquilt';
            GRANT ALL ON skyquilt_slurm_acct_db.* TO 'slurm'@'$host';"
    done
}

start_slurmdbd() { # slurmdbd on 127.0.0.1:$DBD_PORT, the cluster registered in it
    {
        echo "$MARKER: written by tests/slurm/cluster.sh; removed again by \`cluster.sh stop\`."
        echo "AuthType=auth/munge"
        echo "DbdHost=$NODE"
        echo "DbdAddr=127.0.0.1"
        echo "DbdPort=$DBD_PORT"
        echo "SlurmUser=root"
        echo "PidFile=$STATE_DIR/slurmdbd.pid"
        echo "LogFile=$STATE_DIR/slurmdbd.log"
        echo "StorageType=accounting_storage/mysql"
        echo "StorageHost=127.0.0.1"
        echo "StoragePort=$DB_PORT"
        echo "StorageUser=slurm"
        echo "StoragePass=skyquilt"
        echo "StorageLoc=skyquilt_slurm_acct_db"
    } >"$STATE_DIR/slurmdbd.conf"
    install_config slurmdbd.conf
    chmod 0600 "$ETC/slurmdbd.conf" # slurmdbd refuses a config that others can read
    slurmdbd
    wait_pidfile "$STATE_DIR/slurmdbd.pid" slurmdbd SLURMDBD_PID
    local i
    for i in $(seq 1 50); do
        timeout 10 sacctmgr -i add cluster skyquilt-test >/dev/null 2>&1 && break
        sleep 0.2
    done
    timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx skyquilt-test ||
        die "slurmdbd did not register the cluster"
}

add_accounts() { # the accounts of SKYQUILT_SLURM_ACCOUNTS, for the user running `start`
    local account user
    user=$(id -un)
    for account in ${ACCOUNTS//,/ }; do
        timeout 10 sacctmgr -i add account "$account" cluster=skyquilt-test >&2
        timeout 10 sacctmgr -i add user "$user" account="$account" cluster=skyquilt-test >&2
    done
}

enable_accounting() { # in the filled slurm.conf: store job records through slurmdbd
    sed -i -e "s|^AccountingStorageType=.*|AccountingStorageType=accounting_storage/slurmdbd|" \
        "$STATE_DIR/slurm.conf"
    {
        echo "AccountingStorageHost=127.0.0.1"
        echo "AccountingStoragePort=$DBD_PORT"
        echo "AccountingStorageEnforce=associations"
    } >>"$STATE_DIR/slurm.conf"
}

dump_logs() {
    local f
    for f in "$STATE_DIR"/slurmctld.log "$STATE_DIR"/slurmd.log; do
        [[ -f $f ]] && { echo "----- tail of $f" >&2; tail -n 40 "$f" >&2; }
    done
    timeout 10 sinfo -N -l >&2 2>&1 || true
}

on_start_exit() { # any failure after the state dir exists: show the logs, undo everything
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        log "start failed (rc=$rc); cleaning up"
        dump_logs
        cmd_stop || true
    fi
    exit "$rc"
}

cmd_start() {
    [[ $(id -u) == 0 ]] || die "must run as root (installs packages, writes $ETC)"
    if [[ -f $STATE_FILE ]]; then
        # shellcheck disable=SC1090
        if (source "$STATE_FILE"; alive "${SLURMCTLD_PID:-}" slurmctld || alive "${SLURMD_PID:-}" slurmd); then
            die "a test cluster from $STATE_DIR is already running; run '$0 stop' first"
        fi
        log "cleaning up a stale test cluster in $STATE_DIR"
        cmd_stop
    fi
    install_packages
    if [[ -f $ETC/slurm.conf ]] && timeout 10 scontrol ping 2>/dev/null | grep -q UP; then
        ours "$ETC/slurm.conf" && die "another test cluster (not from $STATE_DIR) is running; stop it first"
        die "a real SLURM cluster is configured in $ETC/slurm.conf and its controller answers; not touching it"
    fi

    NODE=$(hostname -s)
    CPUS=$(nproc)
    local avail_mb
    avail_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    REAL_MEMORY=$((avail_mb > 2048 ? avail_mb - 1024 : avail_mb * 3 / 4))
    DEF_MEM_PER_CPU=$((REAL_MEMORY / CPUS / 2))
    ((DEF_MEM_PER_CPU > 1024)) && DEF_MEM_PER_CPU=1024
    ((MIN_JOB_AGE >= 600)) || die "SKYQUILT_SLURM_MIN_JOB_AGE must be >= 600"
    ((GPUS >= 1 && GPUS <= 5)) || die "SKYQUILT_SLURM_GPUS must be 1..5 (one fake device file each)"

    rm -rf "$STATE_DIR"
    mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/slurmd"
    : >"$STATE_FILE"
    trap on_start_exit EXIT

    fill "$HERE/slurm.conf.in" "$STATE_DIR/slurm.conf"
    local p default=YES
    for p in ${PARTITIONS//,/ }; do
        echo "PartitionName=$p Nodes=$NODE Default=$default MaxTime=INFINITE State=UP" >>"$STATE_DIR/slurm.conf"
        default=NO
    done
    ((ACCOUNTING)) && enable_accounting
    fill "$HERE/gres.conf.in" "$STATE_DIR/gres.conf"
    local devs=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom) g
    for ((g = 0; g < GPUS; g++)); do
        echo "NodeName=$NODE Name=gpu Type=$GPU_TYPE File=${devs[g]}" >>"$STATE_DIR/gres.conf"
    done
    if [[ ! -d $ETC ]]; then
        mkdir -p "$ETC"
        echo "CREATED_ETC=1" >>"$STATE_FILE"
    fi
    install_config slurm.conf
    install_config gres.conf
    echo "INSTALLED_CONFIG=1" >>"$STATE_FILE"

    start_munge
    if ((ACCOUNTING)); then
        start_database
        start_slurmdbd
        add_accounts
    fi

    slurmctld -i # -i: ignore state left by an older run (the state dir is fresh anyway)
    wait_pidfile "$STATE_DIR/slurmctld.pid" slurmctld SLURMCTLD_PID
    slurmd
    wait_pidfile "$STATE_DIR/slurmd.pid" slurmd SLURMD_PID

    local i state=""
    for i in $(seq 1 $((START_TIMEOUT * 2))); do
        state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
        case $state in
        idle | mixed | allocated) break ;;
        drain* | down*)
            log "node is $state; resuming it"
            scontrol update nodename="$NODE" state=resume >&2 2>&1 || true
            ;;
        esac
        sleep 0.5
    done
    if [[ $state != idle && $state != mixed && $state != allocated ]]; then
        die "node $NODE did not become idle within ${START_TIMEOUT}s (state: '${state:-none}')"
    fi
    trap - EXIT
    log "cluster up: node $NODE ($CPUS CPUs, ${REAL_MEMORY} MB, gpu:$GPU_TYPE:$GPUS), partitions $PARTITIONS, accounting $ACCOUNTING"
    echo "PARTITION=$PARTITION"
    echo "PARTITIONS=$PARTITIONS"
    echo "NODE=$NODE"
    echo "CPUS=$CPUS"
    echo "REAL_MEMORY=$REAL_MEMORY"
    echo "GPUS=$GPUS"
    echo "GPU_TYPE=$GPU_TYPE"
    echo "STATE_DIR=$STATE_DIR"
    echo "ACCOUNTING=$ACCOUNTING"
    echo "ACCOUNTS=$( ((ACCOUNTING)) && echo "$ACCOUNTS")"
}

wait_pidfile() { # wait_pidfile FILE COMM VAR
    local file=$1 comm=$2 var=$3 i pid
    for i in $(seq 1 100); do
        if [[ -s $file ]]; then
            pid=$(cat "$file")
            if alive "$pid" "$comm"; then
                echo "$var=$pid" >>"$STATE_FILE"
                log "started $comm (pid $pid)"
                return 0
            fi
        fi
        sleep 0.1
    done
    die "$comm did not start (no live pid in $file)"
}

cmd_stop() {
    if [[ ! -f $STATE_FILE ]]; then
        # No state: only clean up a config of ours that a crashed run left behind.
        local name
        for name in slurm.conf gres.conf slurmdbd.conf; do
            if ours "$ETC/$name"; then
                rm -f "$ETC/$name"
                log "removed a leftover $ETC/$name"
            fi
        done
        log "no test cluster state in $STATE_DIR; nothing to stop"
        return 0
    fi
    local SLURMCTLD_PID="" SLURMD_PID="" MUNGED_PID="" CREATED_MUNGE_KEY="" CREATED_RUN_MUNGE=""
    local CREATED_ETC="" INSTALLED_CONFIG="" BACKUP_SLURM_CONF="" BACKUP_GRES_CONF=""
    local SLURMDBD_PID="" MARIADBD_PID="" BACKUP_SLURMDBD_CONF=""
    # shellcheck disable=SC1090
    source "$STATE_FILE"

    # Cancel what is still queued or running, so no slurmstepd outlives slurmd.
    if alive "$SLURMCTLD_PID" slurmctld; then
        local ids
        ids=$(timeout 10 squeue -h -t pending,running,suspended,completing -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${ids// /} ]]; then
            log "cancelling jobs: $ids"
            # shellcheck disable=SC2086
            timeout 10 scancel $ids 2>/dev/null || true
            local i
            for i in $(seq 1 30); do
                [[ -z $(timeout 5 squeue -h -t running,completing -o %A 2>/dev/null || true) ]] && break
                sleep 0.5
            done
        fi
    fi
    kill_pid "$SLURMD_PID" slurmd
    kill_pid "$SLURMCTLD_PID" slurmctld
    kill_pid "$SLURMDBD_PID" slurmdbd
    kill_pid "$MARIADBD_PID" mariadbd
    kill_pid "$MUNGED_PID" munged

    local name var
    if [[ -n $INSTALLED_CONFIG ]]; then
        for name in slurm.conf gres.conf slurmdbd.conf; do
            var=BACKUP_$(echo "$name" | tr '.a-z' '_A-Z')
            if ours "$ETC/$name"; then rm -f "$ETC/$name"; fi
            if [[ -n ${!var} && -e $STATE_DIR/backup.$name ]]; then
                cp -a "$STATE_DIR/backup.$name" "$ETC/$name"
                log "restored the previous $ETC/$name"
            fi
        done
    fi
    if [[ -n $CREATED_ETC ]]; then rmdir "$ETC" 2>/dev/null || true; fi
    if [[ -n $CREATED_MUNGE_KEY ]]; then rm -f /etc/munge/munge.key; fi
    if [[ -n $CREATED_RUN_MUNGE && -n $MUNGED_PID ]]; then rm -rf /run/munge; fi

    if [[ ${SKYQUILT_SLURM_KEEP_LOGS:-0} == 1 ]]; then
        rm -f "$STATE_FILE"
        log "kept the daemon logs in $STATE_DIR"
    else
        rm -rf "$STATE_DIR"
    fi
    log "test cluster stopped"
}

cmd_status() {
    if [[ -f $STATE_FILE ]]; then
        log "state: $STATE_FILE"
        cat "$STATE_FILE" >&2
    else
        log "no state in $STATE_DIR"
    fi
    timeout 10 scontrol ping >&2 2>&1 && sinfo >&2
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
