# plots.gp: bench/report.py runs this with -e "datadir=...; out_pause=...; out_lat=...;
# out_gap=...; lat_systems='a b ...'; nx=N". Data files come from report.py:
#   pause.dat   x "label" b_p50 b_p99 b_max c_p50 c_p99 c_max c_tuned_p50 c_tuned_p99 c_tuned_max
#   lat-S.dat   latency_ms cumulative_fraction (system S's rr latencies)
#   gaps.dat    system_index drill gap_ms
set terminal pngcairo size 900,560 font "sans,10"
set datafile missing "?"
set grid
set key top left

# Pause per checkpoint against the guest's dirty rate.
set output out_pause
set title "Primary pause per checkpoint against the guest's dirty rate (QMP STOP -> RESUME)"
set xlabel "guest dirty rate, MiB/s (colo.dirty=)"
set ylabel "pause, ms"
set logscale y
set xrange [-0.5:nx-0.5]
plot datadir."/pause.dat" using 1:3:xtic(2) with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "(b) colo p50", \
     "" using 1:4 with linespoints lw 1 dt 2 pt 6 lc rgb "#1f77b4" title "(b) colo p99", \
     "" using 1:6 with linespoints lw 2 pt 5 lc rgb "#d62728" title "(c) QEMU COLO defaults p50", \
     "" using 1:7 with linespoints lw 1 dt 2 pt 4 lc rgb "#d62728" title "(c) QEMU COLO defaults p99", \
     "" using 1:9 with linespoints lw 2 pt 9 lc rgb "#2ca02c" title "(c') QEMU COLO tuned p50", \
     "" using 1:10 with linespoints lw 1 dt 2 pt 8 lc rgb "#2ca02c" title "(c') QEMU COLO tuned p99"
unset logscale y
unset xrange

# Request/response latency distributions.
set output out_lat
set title "TCP request/response latency, CDF (4 clients, 64-byte echo)"
set xlabel "latency, ms (log scale)"
set ylabel "fraction of requests"
set logscale x
set yrange [0:1]
set key bottom right
name(s) = s eq "a" ? "(a) unreplicated" : s eq "b" ? "(b) colo" : s eq "c" ? "(c) QEMU COLO defaults" : "(c') QEMU COLO tuned"
col(s) = s eq "a" ? "#000000" : s eq "b" ? "#1f77b4" : s eq "c" ? "#d62728" : "#2ca02c"
plot for [s in lat_systems] datadir."/lat-".s.".dat" using 1:2 with lines lw 2 lc rgb col(s) title name(s)
unset logscale x
set yrange [*:*]

# Failover gaps per drill.
set output out_gap
set title "Failover gap the client sees (SIGKILL of the primary host -> first reply), per drill"
set xlabel "drill"
set ylabel "gap, ms"
set key below
set yrange [0:*]
set autoscale xfix
set offsets 0.5, 0.5, 0, 0
plot datadir."/gaps.dat" using ($1==0 ? $2 : 1/0):3 with points pt 7 ps 1.5 lc rgb "#1f77b4" title "(b) colo", \
     "" using ($1==1 ? $2 : 1/0):3 with points pt 5 ps 1.5 lc rgb "#d62728" title "(c) QEMU COLO defaults", \
     "" using ($1==2 ? $2 : 1/0):3 with points pt 9 ps 1.5 lc rgb "#2ca02c" title "(c') QEMU COLO tuned", \
     300 with lines dt 2 lc rgb "#888888" title "goal 300 ms"
