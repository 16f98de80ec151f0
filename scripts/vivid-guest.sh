#!/bin/busybox sh
# The case list of scripts/vivid-check.sh, run inside the QEMU guest (as
# /cases.sh, busybox sh): loads vivid as /dev/video0 (single-planar) and
# /dev/video1 (multiplanar), then runs perceptd against them. Prints one
# line per case, "CASE <name> PASS|FAIL <figures>", and on failure the tail
# of perceptd's stderr as "DETAIL" lines. VIVID_CASES (space-separated name
# prefixes) selects cases. Exit status: number of failed cases (capped).

FAILS=0
W=/tmp/w
mkdir -p $W

# Milliseconds since boot (10 ms resolution).
now() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }

want() { # case name: run it?
    [ -z "$VIVID_CASES" ] && return 0
    for p in $VIVID_CASES; do
        case "$1" in "$p"*) return 0 ;; esac
    done
    return 1
}

result() { # name ok(0/1) figures
    if [ "$2" = 0 ]; then
        echo "CASE $1 PASS $3"
    else
        echo "CASE $1 FAIL $3"
        FAILS=$((FAILS + 1))
        [ -f $W/err ] && tail -n 6 $W/err | sed 's/^/DETAIL   /'
    fi
}

# cfg FILE DEVICE FORMAT W H FPS [extra [source] lines]
cfg() {
    cat >"$1" <<EOF
[source]
kind = "v4l2"
device = "$2"
format = "$3"
width = $4
height = $5
fps = $6
$7

[model]
path = "/m/model.onnx"
threads = 2

[pipeline]
device = "cpu"

[metrics]
interval_s = 0
EOF
}

# Figures of a run's JSON lines ($W/out): lines, e2e p50 (ms), first e2e,
# max e2e, and frames whose e2e is below the sum of the measured stages
# (queue + preprocess + inference + postprocess; e2e also holds the copy
# and hand-offs, so it can only be larger unless capture time is wrong).
jstats() {
    awk '
    function num(k,   i, s) { i = index($0, "\"" k "\":"); if (!i) return 0; s = substr($0, i + length(k) + 3); return s + 0 }
    /^\{/ {
        n++; e = num("e2e"); s = num("queue") + num("preprocess") + num("inference") + num("postprocess")
        v[n] = e; if (n == 1) first = e; if (e > max) max = e
        if (e + 0.01 < s) bad++
        d = e - s; dsum += d
    }
    END {
        if (n == 0) { print "0 - - - 0 -"; exit }
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        printf "%d %.1f %.1f %.1f %d %.1f\n", n, v[int((n + 1) / 2)], first, max, bad + 0, dsum / n
    }' $W/out
}

# A field of the final summary line: final FIELD (frames, dropped, stalls,
# reconnects, lost, bad).
final() {
    l=$(grep 'final:' $W/err | tail -n 1)
    case "$1" in
    frames) echo "$l" | sed -n 's/.*final: frames \([0-9]*\).*/\1/p' ;;
    dropped) echo "$l" | sed -n 's/.*dropped \([0-9]*\).*/\1/p' ;;
    bad) echo "$l" | sed -n 's/.*bad \([0-9]*\)).*/\1/p' ;;
    lost) echo "$l" | sed -n 's/.*camera lost \([0-9]*\).*/\1/p' ;;
    stalls) echo "$l" | sed -n 's/.*stalls \([0-9]*\).*/\1/p' ;;
    infer_max) echo "$l" | sed -n 's/.*infer p50 [^;]* max \([0-9.]*\) ms.*/\1/p' ;;
    reconnects) echo "$l" | sed -n 's/.*reconnects \([0-9]*\).*/\1/p' ;;
    esac
}

# run CFG [perceptd run args]: foreground; sets RC and T (ms).
run() {
    c=$1
    shift
    t0=$(now)
    perceptd run --config "$c" "$@" >$W/out 2>$W/err
    RC=$?
    T=$(($(now) - t0))
}

# bg CFG [args]: perceptd run in the background; PID.
bg() {
    c=$1
    shift
    perceptd run --config "$c" "$@" >$W/out 2>$W/err &
    PID=$!
}

# Wait until $W/out has N lines or S seconds passed; 0 when it has.
waitlines() {
    i=0
    while [ $i -lt $(($2 * 10)) ]; do
        [ "$(grep -c '^{' $W/out 2>/dev/null)" -ge "$1" ] && return 0
        kill -0 $PID 2>/dev/null || return 1
        usleep 100000
        i=$((i + 1))
    done
    return 1
}

# stop PID with SIGTERM; sets RC and TERM_MS (time to exit).
term() {
    t0=$(now)
    kill -TERM $PID
    wait $PID
    RC=$?
    TERM_MS=$(($(now) - t0))
}

ctl() { v4l2-ctl -d "$1" -c "$2" >/dev/null 2>&1; }

# ---- vivid ------------------------------------------------------------------
# Two instances, capture nodes only: video0 single-planar, video1
# multiplanar (vivid's multiplanar=1 is single, 2 multi).
if ! modprobe vivid n_devs=2 node_types=0x1,0x1 multiplanar=1,2 vid_cap_nr=0,1 2>$W/err; then
    result load-vivid 1 "modprobe failed"
    exit 1
fi
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /dev/video1 ] && break; sleep 1; done
result load-vivid "$([ -e /dev/video0 ] && [ -e /dev/video1 ] && echo 0 || echo 1)" \
    "$(cat /sys/class/video4linux/video0/name), $(cat /sys/class/video4linux/video1/name)"
# Opt-in only: the controls and the multiplanar node's state.
if case " $VIVID_CASES " in *" explore "*) true ;; *) false ;; esac then
    v4l2-ctl -d /dev/video0 -L | sed 's/^/INFO /'
    v4l2-ctl -d /dev/video1 --all | sed 's/^/INFO /' | head -n 40
fi

# ---- formats: record + replay, run -------------------------------------------
for size in 640x480 1280x720; do
    w=${size%x*}
    h=${size#*x}
    for f in yuyv uyvy nv12 grey rgb24; do
        if want "record-$f-$size"; then
            rm -f $W/rec.y4m
            t0=$(now)
            perceptd record --device /dev/video0 --format $f --width $w --height $h --fps 30 \
                --frames 6 --out $W/rec.y4m >$W/out 2>$W/err
            rc=$?
            if [ $f = rgb24 ]; then
                # Y4M holds no RGB: the refusal must be one clear error.
                grep -qi "rgb24" $W/err && [ $rc != 0 ]
                result "record-$f-$size" $? "refused (Y4M holds no RGB): rc $rc, $(grep -m1 error $W/err)"
            else
                bytes=$(wc -c <$W/rec.y4m 2>/dev/null || echo 0)
                cfg $W/r.toml /dev/video0 $f $w $h 30
                perceptd replay $W/rec.y4m --config $W/r.toml >$W/out 2>$W/err
                rrc=$?
                n=$(grep -c '^{' $W/out)
                [ $rc = 0 ] && [ $rrc = 0 ] && [ "$n" = 6 ]
                result "record-$f-$size" $? "recorded 6 frames ($bytes bytes, rc $rc), replayed $n lines (rc $rrc)"
            fi
        fi
        if want "run-$f-$size"; then
            cfg $W/c.toml /dev/video0 $f $w $h 25
            run $W/c.toml --frames 8
            set -- $(jstats)
            [ $RC = 0 ] && [ "$1" = 8 ] && [ "$5" = 0 ]
            result "run-$f-$size" $? "rc $RC, $1 lines in $T ms, e2e p50 $2 ms, e2e<stages $5, $(grep -m1 'boot\] source:' $W/err | sed 's/.*source: //')"
        fi
    done
done

# ---- multiplanar ----------------------------------------------------------------
if want mplane-record; then
    t0=$(now)
    perceptd record --device /dev/video1 --format yuyv --width 640 --height 480 --frames 6 \
        --out $W/mp.y4m >$W/out 2>$W/err
    rc=$?
    cfg $W/r.toml /dev/video1 yuyv 640 480 30
    perceptd replay $W/mp.y4m --config $W/r.toml >$W/out 2>>$W/err
    rrc=$?
    n=$(grep -c '^{' $W/out)
    [ $rc = 0 ] && [ $rrc = 0 ] && [ "$n" = 6 ]
    result mplane-record-yuyv-640x480 $? "rc $rc, $(wc -c <$W/mp.y4m 2>/dev/null) bytes, replayed $n lines (rc $rrc); $(grep -m1 recorded $W/err)"
fi
for f in nv12 yuyv; do
    if want "mplane-run-$f"; then
        cfg $W/c.toml /dev/video1 $f 640 480 30
        run $W/c.toml --frames 8
        set -- $(jstats)
        [ $RC = 0 ] && [ "$1" = 8 ] && [ "$5" = 0 ]
        result "mplane-run-$f-640x480" $? "rc $RC, $1 lines, e2e p50 $2 ms, $(grep -m1 'boot\] source:' $W/err | sed 's/.*source: //')"
    fi
done

# ---- defects ----------------------------------------------------------------
# 1: timestamps. vivid stamps End of Frame one period ahead of delivery; the
# capture time must not be later than the dequeue, so e2e >= stage sum.
for ts in 0:eof 1:soe; do
    if want "timestamp-${ts#*:}"; then
        ctl /dev/video0 timestamp_source=${ts%:*}
        cfg $W/c.toml /dev/video0 yuyv 640 480 25
        run $W/c.toml --frames 12
        ctl /dev/video0 timestamp_source=0
        set -- $(jstats)
        ahead=$(grep -o '[0-9]* buffer timestamps were later.*by up to [0-9.]* ms' $W/err | sed 's/ buffer timestamps.*up to / ahead by up to /')
        [ $RC = 0 ] && [ "$1" = 12 ] && [ "$5" = 0 ]
        result "timestamp-${ts#*:}" $? "rc $RC, $1 lines, e2e p50 $2 ms, e2e<stages $5, mean e2e-stages $6 ms, clamped: ${ahead:-none}"
    fi
done

# 2: streaming starts after the model is ready; a 32-buffer backlog.
if want boot-backlog; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30 "buffers = 32"
    run $W/c.toml --frames 20
    set -- $(jstats)
    # The first frame must not carry the boot (model load, warm-up): its
    # e2e is like the others' (under emulation one inference is ~0.7 s).
    [ $RC = 0 ] && [ "$1" = 20 ] && [ "${3%.*}" -le $((${2%.*} * 3 / 2 + 100)) ]
    result boot-backlog $? "buffers 32 --frames 20: rc $RC, $1 lines, first e2e $3 ms, e2e p50 $2 ms, max $4 ms, final frames $(final frames) dropped $(final dropped); $(grep -m1 -o 'ready in [0-9]* ms' $W/err)"
fi

# 3: --frames N counts processed frames (here the pipeline, ~1 fps under
# emulation, is slower than the camera, 25 fps: most frames are dropped).
if want frames-count; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 25
    run $W/c.toml --frames 10
    set -- $(jstats)
    [ $RC = 0 ] && [ "$1" = 10 ]
    result frames-count $? "--frames 10 at 640x480@25: rc $RC, $1 lines, final frames $(final frames) dropped $(final dropped)"
fi

# 4: 1 fps with the default timeout_ms = 1000: no false stalls.
if want slow-camera; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 1
    run $W/c.toml --frames 6
    set -- $(jstats)
    [ $RC = 0 ] && [ "$1" = 6 ] && [ "$(final stalls)" = 0 ]
    result slow-camera $? "1 fps, timeout_ms 1000: rc $RC, $1 lines in $T ms, e2e p50 $2 ms, e2e<stages $5, stalls $(final stalls), reconnects $(final reconnects)$(grep -q 'three frame intervals' $W/err && echo ', warned')"
fi

# ---- faults -------------------------------------------------------------------
if want sigterm; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30
    bg $W/c.toml
    waitlines 5 60
    term
    n=$(grep -c '^{' $W/out)
    # The frames in flight are drained first: at most two inferences (the
    # one running and the newest ready frame), ~0.7 s each under emulation.
    im=$(final infer_max)
    im=${im%.*}
    [ $RC = 0 ] && [ $TERM_MS -le $((1000 + 2 * ${im:-0})) ] && grep -q 'final:' $W/err
    result sigterm $? "rc $RC, exited $TERM_MS ms after SIGTERM (inference max ${im:-?} ms), $n lines, final frames $(final frames)"
fi

if want disconnect; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30
    bg $W/c.toml
    waitlines 5 60
    before=$(grep -c '^{' $W/out)
    ctl /dev/video0 disconnect=1
    waitlines $((before + 10)) 60
    ok=$?
    term
    back=$(grep -m1 -o 'camera back after [0-9.]* s' $W/err)
    [ $ok = 0 ] && [ $RC = 0 ] && [ "$(final reconnects)" -ge 1 ]
    result disconnect $? "rc $RC, lost $(final lost) reconnects $(final reconnects), ${back:-not back}, lines $before -> $(grep -c '^{' $W/out)"
fi

if want unbind; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30
    bg $W/c.toml
    waitlines 5 60
    before=$(grep -c '^{' $W/out)
    echo vivid.0 >/sys/bus/platform/drivers/vivid/unbind
    sleep 1
    echo vivid.0 >/sys/bus/platform/drivers/vivid/bind
    waitlines $((before + 10)) 60
    ok=$?
    term
    back=$(grep -m1 -o 'camera back after [0-9.]* s ([0-9]* attempts)' $W/err)
    first=$(grep -m1 -o 'reconnect attempt 1 failed.*next in [0-9]* ms' $W/err | grep -o 'next in [0-9]* ms')
    [ $ok = 0 ] && [ $RC = 0 ] && [ "$(final reconnects)" -ge 1 ]
    result unbind-bind $? "rc $RC, lost $(final lost) reconnects $(final reconnects) (failed attempts: first pause ${first:-none}), ${back:-not back}, lines $before -> $(grep -c '^{' $W/out)"
fi

if want stall; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30 "timeout_ms = 300"
    bg $W/c.toml
    waitlines 5 60
    ctl /dev/video0 percentage_of_dropped_buffers=100
    sleep 2
    before=$(grep -c '^{' $W/out)
    ctl /dev/video0 percentage_of_dropped_buffers=0
    waitlines $((before + 10)) 60
    ok=$?
    term
    [ $ok = 0 ] && [ $RC = 0 ] && [ "$(final stalls)" -ge 1 ] && [ "$(final reconnects)" -ge 1 ]
    result stall $? "100% dropped buffers for 2 s: rc $RC, stalls $(final stalls) reconnects $(final reconnects), lines $before -> $(grep -c '^{' $W/out)"
fi

if want error-buffers; then
    cfg $W/c.toml /dev/video0 yuyv 640 480 30
    bg $W/c.toml
    waitlines 3 60
    for i in 1 2 3; do
        ctl /dev/video0 inject_v4l2_buf_flag_error=1
        usleep 300000
    done
    before=$(grep -c '^{' $W/out)
    waitlines $((before + 5)) 60
    ok=$?
    term
    [ $ok = 0 ] && [ $RC = 0 ] && [ "$(final bad)" -ge 1 ] && [ "$(final lost)" = 0 ]
    result error-buffers $? "3 injected V4L2_BUF_FLAG_ERROR: rc $RC, bad $(final bad), lost $(final lost), frames $(final frames)"
fi

if want missing-device; then
    cfg $W/c.toml /dev/video7 yuyv 640 480 30
    run $W/c.toml --frames 5
    e=$(grep -c '^error' $W/err)
    [ $RC = 1 ] && [ "$e" = 1 ] && grep -q '/dev/video7' $W/err
    result missing-device $? "rc $RC in $T ms: $(grep -m1 '^error' $W/err)"
fi

if want adjust; then
    cfg $W/c.toml /dev/video0 yuyv 1000 700 30
    run $W/c.toml --frames 5
    set -- $(jstats)
    [ $RC = 0 ] && [ "$1" = 5 ] && grep -q 'the driver set' $W/err
    result adjust-adapt $? "1000x700 asked: rc $RC, $1 lines, $(grep -m1 -o 'asked for .*' $W/err)"
    cfg $W/c.toml /dev/video0 yuyv 1000 700 30 'on_adjust = "refuse"'
    run $W/c.toml --frames 5
    [ $RC = 1 ] && grep -q 'on_adjust = refuse' $W/err
    result adjust-refuse $? "rc $RC: $(grep -m1 '^error' $W/err)"
fi

# vivid has no MJPEG (vivid_formats[] in the kernel's
# drivers/media/test-drivers/vivid/vivid-vid-common.c lists raw formats
# only), so what a real driver can show is the refusal: one error line
# listing the formats VIDIOC_ENUM_FMT returned, exit 1, nothing mapped.
if want mjpeg-refused; then
    cfg $W/c.toml /dev/video0 mjpeg 1280 720 30
    run $W/c.toml --frames 5
    e=$(grep -c '^error' $W/err)
    [ $RC = 1 ] && [ "$e" = 1 ] && grep -q 'offers no MJPEG (MJPG or JPEG), only YUYV' $W/err
    result mjpeg-refused-run $? "rc $RC: $(grep -m1 '^error' $W/err | cut -c1-160)"
    perceptd record --device /dev/video0 --format mjpeg --width 1280 --height 720 --frames 3 \
        --out $W/rec.mjpeg >$W/out 2>$W/err
    rc=$?
    e=$(grep -c '^error' $W/err)
    [ $rc = 1 ] && [ "$e" = 1 ] && grep -q 'offers no MJPEG' $W/err && [ ! -s $W/rec.mjpeg ]
    result mjpeg-refused-record $? "rc $rc: $(grep -m1 '^error' $W/err | cut -c1-160)"
fi

[ $FAILS -gt 100 ] && FAILS=100
exit $FAILS
