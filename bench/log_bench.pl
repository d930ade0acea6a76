#!/usr/bin/perl
# log_bench.pl -- make bench-log: connection churn with every connect and disconnect logged,
# the asynchronous log writer (./pgslab) against synchronous writes (./pgslab-synclog,
# built with -DLOG_SYNC_WRITE), on a normal file and on a slow one.
#
# Each run starts a fresh pgslab (log_connections=1, log_disconnections=1, -q so
# the logfile is the only output) in front of one throw-away PostgreSQL and runs
#   pgbench -n -S -C -c CLIENTS -j 2 -T SECS --log
# through it.  The logfile is either a regular file or a FIFO whose reader
# drains it at SLOW_KBPS KiB/s (a slow disk or a stuck log shipper).  Runs are
# interleaved (async, sync, async, sync, ...) so drift on a shared machine hits
# both builds alike.  Reported per run and as the median over runs:
#   TPS        pgbench's tps (connections included: -C opens one per transaction)
#   tx p99     99th percentile of pgbench's per-transaction latency (--log),
#              which under -C does not include the connection
#   cycle p50/p99/max
#              per client, the time between consecutive transaction ends:
#              connect + authenticate + query + disconnect, what a churning
#              client sees
#   lines, dropped
#              lines that reached the logfile, and the sum of its
#              "N log lines dropped" notices
#
# Environment: LOG_BENCH_SECS (10), LOG_BENCH_CLIENTS (50), LOG_BENCH_REPS (2),
# LOG_BENCH_SLOW_KBPS (64), LOG_BENCH_AUTH (trust: no per-connection SCRAM on
# either hop, so crypto does not hide the logging cost; scram-sha-256 to include
# it), PGSLAB and PGSLAB_SYNCLOG (the two binaries).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../test/perl";
use POSIX ();
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $root    = "$FindBin::Bin/..";
my $secs    = $ENV{LOG_BENCH_SECS} // 10;
my $clients = $ENV{LOG_BENCH_CLIENTS} // 50;
my $reps    = $ENV{LOG_BENCH_REPS} // 2;
my $kbps    = $ENV{LOG_BENCH_SLOW_KBPS} // 64;
my $auth    = $ENV{LOG_BENCH_AUTH} // 'trust';
my %bin = (
	async => $ENV{PGSLAB} // "$root/pgslab",
	sync  => $ENV{PGSLAB_SYNCLOG} // "$root/pgslab-synclog",
);
for (values %bin) {
	die "log_bench: $_ is missing (make pgslab, make bench-log builds pgslab-synclog)\n" unless -x $_;
}
$SIG{ALRM} = sub { die "log_bench: timed out\n" };
alarm(60 + $reps * 4 * ($secs + 15));

sub slurp { PgSlab::Test::Cluster::_slurp($_[0]) }

sub touch
{
	open(my $fh, '>', $_[0]) or die "touch $_[0]: $!";
	close $fh;
}

sub pct
{
	my ($sorted, $p) = @_;
	return 0 unless @$sorted;
	my $i = int($p / 100 * $#$sorted + 0.5);
	return $sorted->[$i];
}

sub median
{
	my @v = sort { $a <=> $b } @_;
	return 0 unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# Copy <fifo> to <out> at <rate> bytes/s (unlimited once "<ctl>.fast" exists).
sub start_slow_reader
{
	my ($fifo, $out, $ctl, $rate) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	$SIG{$_} = 'DEFAULT' for qw(INT TERM QUIT HUP ALRM);
	alarm 0;
	my $ok = eval {
		open(my $in, '<', $fifo) or die "open $fifo: $!";
		open(my $o, '>', $out) or die "open $out: $!";
		my ($tokens, $last, $fast) = (0, time(), 0);
		while (1) {
			$fast ||= -e "$ctl.fast";
			my $now = time();
			$tokens += ($now - $last) * $rate;
			$last = $now;
			$tokens = $rate * 0.05 if $tokens > $rate * 0.05;	# 50 ms of burst
			my $want = $fast ? 65536 : int($tokens);
			if ($want < 256) {
				sleep(0.005);
				next;
			}
			my $rin = '';
			vec($rin, fileno($in), 1) = 1;
			next unless select(my $rout = $rin, undef, undef, 0.05) > 0;
			my $n = sysread($in, my $buf, $want);
			die "read: $!" unless defined $n;
			last if $n == 0;
			$tokens -= $n;
			syswrite($o, $buf) == $n or die "write: $!";
		}
		1;
	};
	print STDERR "[reader] $@" unless $ok;
	POSIX::_exit($ok ? 0 : 1);
}

print "== log_bench: pgbench -n -S -C -c $clients -j 2 -T $secs, log_connections=1, "
    . "log_disconnections=1, auth $auth, $reps runs per cell, slow logfile = FIFO read at $kbps KiB/s ==\n";
my $node = PgSlab::Test::Cluster->new(name => 'logbench', max_connections => $clients + 50,
	auth_method => $auth eq 'trust' ? 'trust' : 'scram-sha-256');
$node->start;
$node->create_user('app', 'app_pw');
my ($rc, $out, $err) = $node->pgbench('-i', '-q', '-s', '1', 'postgres');
die "pgbench -i: $err\n" if $rc;
$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app');
my $cport = $node->port;
my $userlist = $auth eq 'trust' ? [ [ 'app', 'app_pw' ] ]
    : PgSlab::Test::Proxy::userlist_from_cluster($node, 'app');

sub run_one
{
	my ($variant, $target, $rep) = @_;
	my $p = PgSlab::Test::Proxy->new(
		cluster   => $node,
		name      => "lb_${variant}_$target",
		binary    => $bin{$variant},
		databases => { bench => "host=127.0.0.1 port=$cport dbname=postgres" },
		settings  => {
			auth_type          => $auth,
			log_connections    => 1,
			log_disconnections => 1,
			default_pool_size  => $clients + 10,
			max_client_conn    => 2 * $clients + 20,
		},
		args     => ['-q'],
		userlist => $userlist);
	my $dir = $p->basedir;
	my ($reader, $logtext, $ctl);
	if ($target eq 'slow') {
		my $fifo = "$dir/pgslab.fifo";
		$ctl = "$dir/reader";
		POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
		$p->set(logfile => $fifo);
		$reader = start_slow_reader($fifo, "$dir/fifo.out", $ctl, $kbps * 1024);
	}
	$p->start;
	my ($brc, $bout, $berr) = $p->pgbench('-n', '-S', '-C', '-c', $clients, '-j', '2',
		'-T', $secs, '--log', "--log-prefix=$dir/txlog", 'bench',
		{ cwd => $dir, timeout => $secs + 120,
		  env => { PGUSER => 'app', PGPASSWORD => 'app_pw' } });
	touch("$ctl.fast") if $ctl;
	my $st = $p->stop(timeout => 60);
	if ($reader) {
		PgSlab::Test::Cluster::wait_pid($reader, 30) // do { kill 'KILL', $reader; waitpid($reader, 0) };
		$logtext = slurp("$dir/fifo.out");
	} else {
		$logtext = slurp($p->logfile);
	}
	die "pgbench failed ($variant/$target): $berr\n$bout\n" if $brc;
	warn "pgslab exited with status $st ($variant/$target)\n" if $st;

	my ($tps) = $bout =~ /^tps = ([\d.]+)/m;
	my (@lat, %ends);
	for my $f (glob("$dir/txlog*")) {
		open(my $fh, '<', $f) or next;
		while (<$fh>) {
			my ($client, undef, $us, undef, $es, $eus) = split;
			next unless defined $eus;
			push @lat, $us / 1000;
			push @{ $ends{"$f/$client"} }, $es * 1e3 + $eus / 1e3;
		}
	}
	my @cyc;
	for my $e (values %ends) {
		my @t = sort { $a <=> $b } @$e;
		push @cyc, map { $t[$_] - $t[ $_ - 1 ] } 1 .. $#t;
	}
	@lat = sort { $a <=> $b } @lat;
	@cyc = sort { $a <=> $b } @cyc;
	my $dropped = 0;
	$dropped += $1 while $logtext =~ / (\d+) log lines dropped /g;
	my $lines = () = $logtext =~ /\n/g;
	return {
		variant => $variant, target => $target, rep => $rep,
		tps => $tps // 0, tx => scalar(@lat),
		lat99 => pct(\@lat, 99),
		cyc50 => pct(\@cyc, 50), cyc99 => pct(\@cyc, 99), cycmax => @cyc ? $cyc[-1] : 0,
		lines => $lines, dropped => $dropped,
	};
}

my @runs;
my $t0 = time();
for my $rep (1 .. $reps) {
	for my $target (qw(file slow)) {
		for my $variant (qw(async sync)) {
			my $r = run_one($variant, $target, $rep);
			push @runs, $r;
			printf "run %d %-5s %-4s: %7.1f tps, tx p99 %.2f ms, cycle p99 %.2f ms, %d lines, %d dropped\n",
			    $rep, $variant, $target, $r->{tps}, $r->{lat99}, $r->{cyc99}, $r->{lines},
			    $r->{dropped};
		}
	}
}
$node->stop;

my %tname = (file => 'normal file', slow => "FIFO at $kbps KiB/s");
my %vname = (async => 'async (pgslab)', sync => 'sync (pgslab-synclog)');
my @cols = ('logfile', 'writer', 'run', 'TPS', 'tx p99 ms', 'cycle p50 ms', 'cycle p99 ms',
	'cycle max ms', 'log lines', 'dropped');
sub row { '| ' . join(' | ', @_) . " |\n" }
print "\n### Per run (in the order they ran)\n\n", row(@cols), row(map { '---' } @cols);
for my $r (@runs) {
	print row($tname{ $r->{target} }, $vname{ $r->{variant} }, $r->{rep},
		sprintf('%.1f', $r->{tps}), sprintf('%.2f', $r->{lat99}), sprintf('%.2f', $r->{cyc50}),
		sprintf('%.2f', $r->{cyc99}), sprintf('%.1f', $r->{cycmax}), $r->{lines}, $r->{dropped});
}
print "\n### Median over $reps runs\n\n", row(grep { $_ ne 'run' } @cols),
    row(map { '---' } 2 .. @cols);
for my $target (qw(file slow)) {
	for my $variant (qw(async sync)) {
		my @rs = grep { $_->{target} eq $target && $_->{variant} eq $variant } @runs;
		my %m = map { my $k = $_; $k => median(map { $_->{$k} } @rs) }
		    qw(tps lat99 cyc50 cyc99 cycmax lines dropped);
		print row($tname{$target}, $vname{$variant}, sprintf('%.1f', $m{tps}),
			sprintf('%.2f', $m{lat99}), sprintf('%.2f', $m{cyc50}), sprintf('%.2f', $m{cyc99}),
			sprintf('%.1f', $m{cycmax}), int($m{lines}), int($m{dropped}));
	}
}
printf "\n(%d runs in %.0f s)\n", scalar(@runs), time() - $t0;
alarm 0;
