#!/bin/bash
# record-fixtures.sh - record real qstat/qacct output on the cluster from start-sge.sh, for the
# parser tests in tests/test_sge_executor.py (files tests/golden/sge_*). Prints which job is
# which: after recording anew, update the job numbers in the tests and tests/golden/README.md.
set -euo pipefail
OUT=${1:-$(cd "$(dirname "$0")/../../tests/golden" && pwd)}
W=$(mktemp -d /tmp/sge-record.XXXXXX)
cd "$W"
sub() { qsub -terse -S /bin/bash -o /dev/null -j y "$@" | cut -d. -f1; }
gone() { while qstat -j "$1" >/dev/null 2>&1; do sleep 0.1; done; }

# --- live: running, array throttled by -tc, held by -hold_jid, error state (Eqw)
run=$(sub -N rec.running -b y sleep 60)
arr=$(sub -N rec.array -t 1-6 -tc 2 -b y sleep 60)
held=$(sub -N rec.held -hold_jid "$run" -b y true)
eqw=$(qsub -terse -N rec.eqw -S /bin/bash -o /nonexistent/dir/x.log -j y -b y true)
sleep 4
qstat -u '*' -xml > "$OUT/sge_qstat_live.xml"
qstat -j "$eqw" > "$OUT/sge_qstat_j_eqw.txt"
qdel "$run" "$arr" "$held" "$eqw" >/dev/null

# --- ended: success, exit 3, h_rt, deleted while running, array of exits, h_vmem, SIGKILL
ok=$(sub -N rec.ok -b y true)
ex3=$(sub -N rec.exit3 -b y 'exit 3')
hrt=$(sub -N rec.hrt -l h_rt=0:0:2 -b y sleep 30)
del=$(sub -N rec.deleted -b y sleep 30)
exits=$(sub -N rec.exits -t 1-3 -b y 'exit $((SGE_TASK_ID - 1))')
cat > two.sh <<'EOF'
python3 -c 'import time; x = bytearray(100 << 20); time.sleep(8)' &
python3 -c 'import time; x = bytearray(100 << 20); time.sleep(8)' &
wait
EOF
mem=$(sub -N rec.memory -l h_vmem=150M two.sh)
cat > kill.sh <<'EOF'
python3 -c 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'
status=$?
exit "$status"
EOF
kill=$(sub -N rec.killed kill.sh)
sleep 3
qdel "$del" >/dev/null
for j in $ok $ex3 $hrt $del $exits $mem $kill $eqw; do gone "$j"; done
sleep 1
: > "$OUT/sge_qacct.txt"
for j in $ok $ex3 $hrt $del $exits $mem $kill $eqw; do
    until qacct -j "$j" >> "$OUT/sge_qacct.txt" 2>/dev/null; do sleep 0.2; done
done
rm -rf "$W"
cat <<EOF
recorded into $OUT:
  sge_qstat_live.xml  running $run, array $arr (1-6, -tc 2), held $held, Eqw $eqw
  sge_qstat_j_eqw.txt qstat -j $eqw
  sge_qacct.txt       ok $ok, exit3 $ex3, h_rt $hrt, deleted $del, exits $exits (1-3),
                      memory $mem, killed $kill, eqw $eqw
EOF
