#!/usr/bin/perl
# budget_bench.pl -- make bench-budget: pgslab vs PgBouncer sharing one database's backend-connection budget.
#
# One throw-away PostgreSQL 15 (PgSlab::Test::Cluster).  For every scenario
# and repetition a fresh pgslab and a fresh PgBouncer (same ini: transaction
# pooling, same pool sizes and max_db_connections, SCRAM with the verifiers
# from pg_authid) are started in turn (interleaved, the order alternating per
# repetition), pgbench runs one process per pool (one user = one pool) with
# --log, and everything is computed from the per-transaction logs (client id,
# latency, completion time):
#
#   cold    50 clients, one SELECT pg_sleep(1) each, on an empty pool of 50
#           while every server login takes 1 s (connect_query in [databases]):
#           time until all are done, the first transaction done, the median
#           client done, and the peak number of logins in flight.
#   skew    max_db_connections = 8, pool "big" 24 clients and pool "small" 4
#           clients, SELECT pg_sleep(0.01), both for SECS: per-pool TPS,
#           per-client rates, Jain's index over the 28 per-client rates,
#           per-pool p99 latency (= wait for a backend + 10 ms).
#   many    12 pools x 3 clients under max_db_connections = 8: Jain over 36
#           clients, pools without a single transaction in the first 5 s.
#   late    "big" (24 clients) from t = 0, "late" (4 clients) from t = 3 s:
#           time until the late pool's first transaction is done, per-client
#           rates and Jain over the 28 clients while both run.
#   long    "long" (8 clients, 2 s transactions) from t = 0, "short"
#           (4 clients, 10 ms transactions) from t = 1 s: short-pool latency.
#
# Jain's index J = (sum x)^2 / (n * sum x^2) is 1 when every client gets the
# same rate and 1/n when one client gets everything.
#
# Markdown tables go to stdout and bench/results/budget.md; progress to stderr.
# Environment: PGSLAB (./pgslab), PGBOUNCER (/usr/sbin/pgbouncer),
# BUDGET_BENCH_SECS (10), BUDGET_BENCH_REPS (2), BUDGET_BENCH_ONLY
# (comma-separated scenario ids), BUDGET_BENCH_OUT (bench/results),
# BUDGET_BENCH_LIMIT (seconds for the whole run; 330 with the defaults).
# The whole run is bounded by an alarm; Ctrl-C stops pgbench, the poolers
# and PostgreSQL.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../test/perl";

use Cwd qw(abs_path);
use File::Path qw(make_path);
use File::Temp ();
use List::Util qw(max min sum);
use POSIX ();
use Time::HiRes qw(time sleep);

use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

my $ROOT = abs_path("$FindBin::Bin/..");
my $SECS = $ENV{BUDGET_BENCH_SECS} // 10;
my $REPS = $ENV{BUDGET_BENCH_REPS} // 2;
my $OUT = $ENV{BUDGET_BENCH_OUT} // "$ROOT/bench/results";
my %BIN = (
	pgslab    => $ENV{PGSLAB} // "$ROOT/pgslab",
	pgbouncer => $ENV{PGBOUNCER} // '/usr/sbin/pgbouncer',
);
my %LABEL = (pgslab => 'pgslab', pgbouncer => 'PgBouncer');
my @KINDS = qw(pgslab pgbouncer);
my @ALL_SCEN = qw(cold skew many late long);
my %ONLY = map { $_ => 1 } split /,/, ($ENV{BUDGET_BENCH_ONLY} // join(',', @ALL_SCEN));
for my $s (keys %ONLY) {
	die "budget_bench: unknown scenario $s (one of @ALL_SCEN)\n" unless grep { $_ eq $s } @ALL_SCEN;
}
for my $k (@KINDS) {
	die "budget_bench: $BIN{$k} is not executable\n" unless -x $BIN{$k};
}
die "budget_bench: BUDGET_BENCH_SECS must be >= 6\n" if $SECS < 6;
die "budget_bench: BUDGET_BENCH_REPS must be >= 1\n" if $REPS < 1;

$| = 1;
for my $k (keys %ENV) {
	delete $ENV{$k} if $k =~ /^PG/ && $k !~ /^PGSLAB/;
}

# The whole run is bounded: a cold start takes up to ~15 s, the other four
# scenarios SECS each, per pooler and repetition, plus startup slack (330 s
# with the defaults).  A run that has not ended 15 s after its planned end
# (a client that never got a backend) is killed; on the alarm, the report
# covers what was measured so far.
my $LIMIT = $ENV{BUDGET_BENCH_LIMIT} // 30 + $REPS * 2 * (15 + 4 * ($SECS + 5));
$SIG{ALRM} = sub { die "budget_bench: timed out after ${LIMIT}s\n" };
alarm($LIMIT);

# Our pgbench children, killed on teardown (exit, die, SIGINT/SIGTERM: the
# harness's handlers run every teardown hook, then stop proxies and cluster).
my %CHILD;
sub kill_children
{
	kill 'TERM', $_ for keys %CHILD;
	for my $pid (keys %CHILD) {
		if (!defined PgSlab::Test::Cluster::wait_pid($pid, 2)) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
		}
		delete $CHILD{$pid};
	}
}
push @PgSlab::Test::Cluster::TEARDOWN_HOOKS, \&kill_children;

my $T0 = time;
sub progress
{
	my ($fmt, @a) = @_;
	printf STDERR "[%5.1fs] $fmt\n", time - $T0, @a;
}

# ---------------------------------------------------------------------------
# Statistics

sub median
{
	my @v = sort { $a <=> $b } grep { defined } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

sub pct
{
	my ($p, @v) = @_;
	@v = sort { $a <=> $b } @v;
	return undef unless @v;
	my $i = int($p / 100 * $#v + 0.5);
	return $v[$i];
}

sub jain
{
	my @x = @_;
	return undef unless @x;
	my $s = sum(@x);
	my $q = sum(map { $_ * $_ } @x);
	return $q > 0 ? $s * $s / (@x * $q) : 0;
}

# ---------------------------------------------------------------------------
# Cluster, users, scripts

my $TMP = File::Temp->newdir('pgslab_budget_XXXXXX', TMPDIR => 1);
my $node = PgSlab::Test::Cluster->new(name => 'budget', max_connections => 150);
$node->start;
my @USERS = (qw(cold big small late long short), map { sprintf('u%02d', $_) } 1 .. 12);
$node->create_user($_, "${_}_pw") for @USERS;
my $USERLIST = userlist_from_cluster($node, @USERS);
my $direct = $node->connect_dbi('postgres');
my ($PGVER) = $direct->selectrow_array('SHOW server_version');
my ($PGB_VER) = (`$BIN{pgbouncer} --version 2>/dev/null` // '') =~ /(PgBouncer \S+)/;
$PGB_VER //= 'PgBouncer';
progress('PostgreSQL %s on port %d; %s; runs of %d s, %d repetitions', $PGVER, $node->port,
	$PGB_VER, $SECS, $REPS);

my %SCRIPT;
for ([ one => 'SELECT pg_sleep(1);' ], [ short => 'SELECT pg_sleep(0.01);' ],
	[ long => 'SELECT pg_sleep(2);' ]) {
	my $f = "$TMP/$_->[0].sql";
	open(my $fh, '>', $f) or die "$f: $!";
	print $fh "$_->[1]\n";
	close $fh;
	$SCRIPT{ $_->[0] } = $f;
}
# Distinct text from the client's one.sql, so logins can be counted apart.
my $LOGIN_QUERY = 'SELECT pg_sleep(1) AS login_delay';
my $RUN_AS = $> == 0 ? 'pgslab_pg' : undef;	# pgbouncer refuses to run as root
my $seq = 0;

sub pooler_start
{
	my ($kind, %o) = @_;
	my $pgb = $kind eq 'pgbouncer';
	my $db = 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres';
	$db .= " connect_query='$o{connect_query}'" if $o{connect_query};
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => "budget_$kind" . ++$seq,
		binary    => $BIN{$kind},
		admin_db  => $pgb ? 'pgbouncer' : 'pgslab',
		run_as    => $pgb ? $RUN_AS : undef,
		databases => { postgres => $db },
		settings  => {
			pool_mode          => 'transaction',
			auth_type          => 'scram-sha-256',
			default_pool_size  => $o{pool_size},
			max_db_connections => $o{max_db} // 0,
			max_client_conn    => 300,
			query_wait_timeout => $o{query_wait} // 120,
			log_connections    => 0,
			log_disconnections => 0,
		},
		userlist => $USERLIST);
	$p->start(timeout => 15);
	require DBI;
	my $adm = DBI->connect('dbi:Pg:host=' . $p->host . ';port=' . $p->port . ';dbname='
		    . ($pgb ? 'pgbouncer' : 'pgslab') . ';sslmode=disable',
		$node->superuser, $node->superuser_password,
		{ RaiseError => 1, PrintError => 0, AutoCommit => 1, pg_server_prepare => 0 });
	return { kind => $kind, proxy => $p, admin => $adm };
}

sub pooler_stop
{
	my ($pl) = @_;
	eval { $pl->{admin}->disconnect };
	$pl->{proxy}->stop;
	%$pl = ();
}

# Server connections the pooler holds for database postgres (SHOW POOLS: the
# same columns in both).
sub pooler_servers
{
	my ($pl) = @_;
	my $rows = eval { $pl->{admin}->selectall_arrayref('SHOW POOLS', { Slice => {} }) } or return 0;
	my $n = 0;
	for my $r (grep { $_->{database} eq 'postgres' } @$rows) {
		$n += $r->{$_} // 0 for qw(sv_active sv_idle sv_used sv_tested sv_login
			sv_active_cancel sv_being_canceled);
	}
	return $n;
}

# ---------------------------------------------------------------------------
# One run: pgbench processes (one per pool), each started at its offset, the
# cluster polled meanwhile.  Groups: { user, clients, script, at, secs | txns }.
# Returns { t0, peak_backends (pg_stat_activity), peak_servers (the pooler's
# SHOW POOLS), peak_logins, groups => [ { %group, spawn, status,
# failed, tx => [ [client, latency_s, end_time], ... ] } ] }.

sub run_groups
{
	my ($pl, $tag, @groups) = @_;
	my $proxy = $pl->{proxy};
	my $t0 = time;
	my @pending = sort { $a->{at} <=> $b->{at} } @groups;
	my @running;
	my ($peak_b, $peak_l, $peak_s) = (0, 0, 0);
	my $deadline = $t0 + max(map { $_->{at} + ($_->{secs} // 15) } @groups) + 15;
	while (@pending || grep { !defined $_->{status} } @running) {
		my $now = time;
		while (@pending && $now - $t0 >= $pending[0]{at}) {
			my $g = shift @pending;
			my $name = "$tag.$g->{user}";
			$g->{prefix} = "$TMP/$name";
			$g->{out} = "$TMP/$name.out";
			my @len = defined $g->{txns} ? ('-t', $g->{txns}) : ('-T', $g->{secs});
			$g->{spawn} = time;
			$g->{pid} = PgSlab::Test::Cluster::spawn_command(
				[ pg_bindir() . '/pgbench', '-n', '-f', $SCRIPT{ $g->{script} },
				  '-c', $g->{clients}, '-j', min(2, $g->{clients}), @len,
				  '-l', "--log-prefix=$g->{prefix}", 'postgres' ],
				env => { PGHOST => $proxy->host, PGPORT => $proxy->port,
					PGUSER => $g->{user}, PGPASSWORD => "$g->{user}_pw",
					PGCONNECT_TIMEOUT => 15, PGSSLMODE => 'disable',
					LC_ALL => 'C', LANG => 'C' },
				stdout_file => $g->{out}, stderr_file => $g->{out});
			$CHILD{ $g->{pid} } = 1;
			push @running, $g;
		}
		my ($b, $l) = $direct->selectrow_array(q{
			SELECT count(*) FILTER (WHERE backend_type = 'client backend'
				AND usename <> current_user),
			       count(*) FILTER (WHERE query = $1 AND state = 'active')
			FROM pg_stat_activity}, undef, $LOGIN_QUERY);
		$peak_b = $b if $b > $peak_b;
		$peak_l = $l if $l > $peak_l;
		my $sv = pooler_servers($pl);
		$peak_s = $sv if $sv > $peak_s;
		for my $g (grep { !defined $_->{status} } @running) {
			my $r = waitpid($g->{pid}, POSIX::WNOHANG());
			next unless $r == $g->{pid};
			$g->{status} = $?;
			$g->{done} = time;
			delete $CHILD{ $g->{pid} };
		}
		if (time > $deadline) {
			for my $g (grep { !defined $_->{status} } @running) {
				kill 'KILL', $g->{pid};
				waitpid($g->{pid}, 0);
				$g->{status} = -1;
				delete $CHILD{ $g->{pid} };
			}
			progress('  %s: pgbench killed after the deadline', $tag);
			last;
		}
		sleep 0.05;
	}
	for my $g (@groups) {
		$g->{tx} = [];
		$g->{failed} = 0;
		for my $f (glob("$g->{prefix}.*")) {
			next if $f eq $g->{out};
			open(my $fh, '<', $f) or die "$f: $!";
			while (<$fh>) {
				my ($client, undef, $lat, undef, $sec, $usec) = split;
				next unless defined $usec;
				if ($lat !~ /^\d+$/) {
					$g->{failed}++;
					next;
				}
				push @{ $g->{tx} }, [ $client, $lat / 1e6, $sec + $usec / 1e6 ];
			}
			close $fh;
		}
		my $text = PgSlab::Test::Cluster::_slurp($g->{out});
		$g->{failed} += $1 if $text =~ /number of failed transactions: (\d+)/ && !$g->{failed};
		$g->{err} = ($text =~ /^(pgbench: error: .*)$/m)[0];
		$g->{aborted} = () = $text =~ /^pgbench: error: client \d+ (?:script \d+ )?aborted/mg;
		if ($g->{status}) {
			progress('  %s %s: pgbench exit status %d%s', $tag, $g->{user}, $g->{status},
				$g->{err} ? ": $g->{err}" : '');
		}
	}
	return { t0 => $t0, peak_backends => $peak_b, peak_servers => $peak_s,
		peak_logins => $peak_l, groups => \@groups };
}

# Per-client transaction rates: transactions completed in [from, to) divided
# by <secs> (default to - from); every client of the group is included (one
# without a transaction counts as 0).  Without a window, the whole run.
sub client_rates
{
	my ($g, $from, $to, $secs) = @_;
	($from, $to, $secs) = (0, 9e99, $g->{secs}) unless defined $from;
	$secs //= $to - $from;
	my %n = map { $_ => 0 } 0 .. $g->{clients} - 1;
	for (@{ $g->{tx} }) {
		$n{ $_->[0] }++ if $_->[2] >= $from && $_->[2] < $to;
	}
	return map { $n{$_} / $secs } sort { $a <=> $b } keys %n;
}

sub lat_ms
{
	my ($p, $g) = @_;
	my $v = pct($p, map { $_->[1] } @{ $g->{tx} });
	return defined $v ? 1000 * $v : undef;
}

sub first_done
{
	my ($g) = @_;
	return undef unless @{ $g->{tx} };
	return min(map { $_->[2] } @{ $g->{tx} }) - $g->{spawn};
}

sub run_ok
{
	my ($r) = @_;
	return !grep { $_->{status} || $_->{failed} || $_->{aborted} } @{ $r->{groups} };
}

# ---------------------------------------------------------------------------
# Scenarios: each returns a hashref of metrics for one run.

# The capped scenarios: a client still waiting for a backend 3 s after the
# planned end is dropped by the pooler (query_wait_timeout, same for both), so
# pgbench ends on its own and writes out its log instead of being killed.
my %CAPPED = (pool_size => 20, max_db => 8, query_wait => $SECS + 3);

my %SCEN = (
	cold => {
		title => 'Cold start: 50 clients, one 1 s transaction each, empty pool of 50, '
		    . 'every server login takes 1 s',
		proxy => { pool_size => 50, connect_query => $LOGIN_QUERY },
		groups => [ { user => 'cold', clients => 50, script => 'one', at => 0, txns => 1 } ],
		measure => sub {
			my ($r) = @_;
			my ($g) = @{ $r->{groups} };
			my @done = sort { $a <=> $b } map { $_->[2] - $g->{spawn} } @{ $g->{tx} };
			# A transaction starts at end - latency: the first start is when
			# pgbench had its clients connected (SCRAM with the pooler) and
			# sent the first query; the pooler's part of the run follows.
			my $start = min(map { $_->[2] - $_->[1] } @{ $g->{tx} });
			my $end = max(map { $_->[2] } @{ $g->{tx} });
			return {
				n         => scalar @done,
				all       => @done == 50 ? $done[-1] : undef,
				pooler    => @done == 50 ? $end - $start : undef,
				connect   => defined $start ? $start - $g->{spawn} : undef,
				maxwait   => max(map { $_->[1] - 1 } @{ $g->{tx} }),
				first     => $done[0],
				median    => median(@done),
				logins    => $r->{peak_logins},
			};
		},
	},
	skew => {
		title => 'Fairness: max_db_connections = 8, pool "big" 24 clients + pool "small" '
		    . "4 clients, 10 ms transactions, $SECS s",
		proxy => { %CAPPED },
		groups => [
			{ user => 'big', clients => 24, script => 'short', at => 0, secs => $SECS },
			{ user => 'small', clients => 4, script => 'short', at => 0, secs => $SECS },
		],
		measure => sub {
			my ($r) = @_;
			my ($b, $s) = @{ $r->{groups} };
			my %m;
			for my $g ($b, $s) {
				my @rates = client_rates($g);
				$m{"$g->{user}_rates"} = \@rates;
				$m{"$g->{user}_tps"} = @{ $g->{tx} } / $SECS;
				$m{"$g->{user}_pc"} = sum(@rates) / @rates;
				$m{"$g->{user}_p99"} = lat_ms(99, $g);
			}
			$m{jain} = jain(@{ $m{big_rates} }, @{ $m{small_rates} });
			$m{ratio} = $m{big_pc} > 0 ? $m{small_pc} / $m{big_pc} : undef;
			return \%m;
		},
	},
	many => {
		title => "More pools than slots: 12 pools x 3 clients under max_db_connections = 8, "
		    . "10 ms transactions, $SECS s",
		proxy => { %CAPPED },
		groups => [ map { { user => sprintf('u%02d', $_), clients => 3, script => 'short',
			at => 0, secs => $SECS } } 1 .. 12 ],
		measure => sub {
			my ($r) = @_;
			my @g = @{ $r->{groups} };
			my (@rates, @pool_tps, $zero5, $zero_all);
			my $t5 = min(map { $_->{spawn} } @g) + 5;
			for my $g (@g) {
				push @rates, client_rates($g);
				push @pool_tps, @{ $g->{tx} } / $SECS;
				$zero5++ unless grep { $_->[2] < $t5 } @{ $g->{tx} };
				$zero_all++ unless @{ $g->{tx} };
			}
			return {
				tps      => sum(@pool_tps),
				jain     => jain(@rates),
				pool_jain => jain(@pool_tps),
				zero5    => $zero5 // 0,
				zero_all => $zero_all // 0,
				pool_min => min(@pool_tps),
				pool_max => max(@pool_tps),
				p99      => pct(99, map { 1000 * $_->[1] } map { @{ $_->{tx} } } @g),
			};
		},
	},
	late => {
		title => 'Late joiner: max_db_connections = 8, pool "big" 24 clients from t = 0 '
		    . "for $SECS s, pool \"late\" 4 clients from t = 3 s, 10 ms transactions",
		proxy => { %CAPPED },
		groups => [
			{ user => 'big', clients => 24, script => 'short', at => 0, secs => $SECS },
			{ user => 'late', clients => 4, script => 'short', at => 3, secs => $SECS - 3 },
		],
		measure => sub {
			my ($r) = @_;
			my ($b, $l) = @{ $r->{groups} };
			# Window while both run: from the late pool's start to the end
			# of the shorter run.
			my $from = $l->{spawn};
			my $to = min($b->{spawn} + $SECS, $l->{spawn} + $SECS - 3);
			my @rb = client_rates($b, $from, $to);
			my @rl = client_rates($l, $from, $to);
			my $pb = sum(@rb) / @rb;
			my $pl = sum(@rl) / @rl;
			return {
				first    => first_done($l),
				late_pc  => $pl,
				big_pc   => $pb,
				ratio    => $pb > 0 ? $pl / $pb : undef,
				jain     => jain(@rb, @rl),
				late_p99 => lat_ms(99, $l),
			};
		},
	},
	long => {
		title => 'Long transactions: max_db_connections = 8, pool "long" 8 clients running '
		    . '2 s transactions from t = 0, pool "short" 4 clients running 10 ms transactions '
		    . 'from t = 1 s',
		proxy => { %CAPPED },
		groups => [
			{ user => 'long', clients => 8, script => 'long', at => 0, secs => $SECS },
			{ user => 'short', clients => 4, script => 'short', at => 1, secs => $SECS - 1 },
		],
		measure => sub {
			my ($r) = @_;
			my ($lg, $s) = @{ $r->{groups} };
			return {
				short_tps => @{ $s->{tx} } / ($SECS - 1),
				short_p50 => lat_ms(50, $s),
				short_p99 => lat_ms(99, $s),
				short_max => lat_ms(100, $s),
				first     => first_done($s),
				long_tps  => @{ $lg->{tx} } / $SECS,
			};
		},
	},
);

# ---------------------------------------------------------------------------
# Run everything: per scenario, repetitions interleaved across the poolers.

my %RES;	# scen => kind => [ metrics per rep ]
my @NOTES;
my $pooler;
my $stopped_early = 0;
eval {
for my $id (grep { $ONLY{$_} } @ALL_SCEN) {
	my $sc = $SCEN{$id};
	progress('%s: %s', $id, $sc->{title});
	for my $rep (1 .. $REPS) {
		my @order = $rep % 2 ? @KINDS : reverse @KINDS;
		for my $kind (@order) {
			$pooler = pooler_start($kind, %{ $sc->{proxy} });
			my @groups = map { { %$_ } } @{ $sc->{groups} };
			my $r = run_groups($pooler, "$id.$kind.$rep", @groups);
			pooler_stop($pooler);
			undef $pooler;
			my $m = $sc->{measure}->($r);
			$m->{backends} = $r->{peak_backends};
			$m->{servers} = $r->{peak_servers};
			unless (run_ok($r)) {
				my @bad = map {
					my $g = $_;
					my $e = $g->{status} == -1 ? 'pgbench killed at the deadline'
					    : "pgbench exit " . ($g->{status} >> 8);
					$e .= ", $g->{aborted} of $g->{clients} clients aborted" if $g->{aborted};
					$e .= ", $g->{failed} transactions failed" if $g->{failed};
					$e .= " ($g->{err})" if $g->{err} && !$g->{aborted};
					"$g->{user}: $e";
				} grep { $_->{status} || $_->{failed} || $_->{aborted} } @{ $r->{groups} };
				push @NOTES, "$id rep $rep $LABEL{$kind}: " . join('; ', @bad);
			}
			push @{ $RES{$id}{$kind} }, $m;
			progress('  rep %d %-9s %s', $rep, $LABEL{$kind}, join(' ',
				map { my $v = $m->{$_}; ref $v ? () : sprintf('%s=%s', $_,
					defined $v ? sprintf('%.3g', $v) : '-') } sort keys %$m));
			# Let PostgreSQL reap the closed backends before the next run.
			for (1 .. 50) {
				my ($n) = $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
					WHERE backend_type = 'client backend' AND usename <> current_user});
				last unless $n;
				sleep 0.1;
			}
		}
	}
}
1;
} or do {
	my $err = $@ || 'unknown error';
	chomp $err;
	progress('stopped early: %s', $err);
	$stopped_early = 1;
	push @NOTES, "stopped early ($err): the tables cover the runs finished before";
	# Our pgbench children first, then the pooler of the unfinished run.
	kill_children();
	eval { pooler_stop($pooler) } if $pooler && $pooler->{proxy};
};

# ---------------------------------------------------------------------------
# Report

my @MD;
sub out { push @MD, @_ }

# "median (rep1, rep2, ...)" of metric <f> for pooler <kind> in scenario <id>.
sub cell
{
	my ($id, $kind, $f, $dec) = @_;
	my @v = map { $_->{$f} } @{ $RES{$id}{$kind} // [] };
	return '-' unless @v;
	my $fmt = sub { defined $_[0] ? sprintf("%.${dec}f", $_[0]) : '-' };
	my $m = median(@v);
	my $c = $fmt->($m);
	$c .= ' (' . join(', ', map { $fmt->($_) } @v) . ')' if @v > 1;
	return $c;
}

sub med { my ($id, $kind, $f) = @_; return median(map { $_->{$f} } @{ $RES{$id}{$kind} // [] }) }

sub table
{
	my ($id, @cols) = @_;	# [ header, field, decimals ]
	return unless $RES{$id};
	out('', "### $SCEN{$id}{title}", '');
	out('| pooler | ' . join(' | ', map { $_->[0] } @cols) . ' |');
	out('|---|' . join('|', map { '---:' } @cols) . '|');
	for my $kind (@KINDS) {
		out("| $LABEL{$kind} | " . join(' | ', map { cell($id, $kind, $_->[1], $_->[2]) } @cols)
		    . ' |');
	}
}

my $load = (split ' ', PgSlab::Test::Cluster::_slurp('/proc/loadavg'))[0] // '?';
my $ncpu = () = PgSlab::Test::Cluster::_slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
out('## Sharing a database\'s connection budget: pgslab vs ' . $PGB_VER, '',
	sprintf('PostgreSQL %s, fsync off, on the same host (%d CPUs, load average %s at the end).  '
	    . 'Every cell is the median over %d runs, then each run in parentheses; pgslab and '
	    . 'PgBouncer runs interleaved, each on a fresh pooler.  Transaction pooling, SCRAM, '
	    . 'pool sizes and max_db_connections identical.  Latencies and rates from the pgbench '
	    . 'per-transaction logs; a latency includes the wait for a backend.',
	    $PGVER, $ncpu, $load, $REPS));

table('cold',
	[ 'all 50 done (s)', 'all', 2 ], [ 'first query sent → all done (s)', 'pooler', 2 ],
	[ 'first tx done (s)', 'first', 2 ], [ 'median client done (s)', 'median', 2 ],
	[ 'max wait for a backend (s)', 'maxwait', 2 ], [ 'peak logins in flight', 'logins', 0 ],
	[ 'pgbench connect phase (s)', 'connect', 2 ], [ 'transactions', 'n', 0 ]);
if ($RES{cold} && (med('cold', 'pgslab', 'all') // 0) > 0 && med('cold', 'pgbouncer', 'all')) {
	my $sp = (med('cold', 'pgbouncer', 'all') // 0) / med('cold', 'pgslab', 'all');
	my $sq = (med('cold', 'pgbouncer', 'pooler') // 0) / (med('cold', 'pgslab', 'pooler') || 1);
	out('', sprintf('All 50 done (from pgbench start): pgslab **%.1fx** faster than PgBouncer; '
	    . 'from the first query sent: %.1fx (goal: >= 5x; the ideal is 2 s: one 1 s login, '
	    . 'then the 1 s transaction).  The first ratio is the fair one: PgBouncer welcomes a '
	    . 'client only after a whole server login (connect_query included), so its connect '
	    . 'phase already holds one 1 s login; pgslab welcomes once the first server has '
	    . 'authenticated.', $sp, $sq));
}
table('skew',
	[ 'big TPS', 'big_tps', 0 ], [ 'small TPS', 'small_tps', 0 ],
	[ 'big tx/s per client', 'big_pc', 1 ], [ 'small tx/s per client', 'small_pc', 1 ],
	[ 'small/big per client', 'ratio', 2 ], [ 'Jain (28 clients)', 'jain', 3 ],
	[ 'big p99 ms', 'big_p99', 0 ], [ 'small p99 ms', 'small_p99', 0 ],
	[ 'peak servers (pooler)', 'servers', 0 ],
	[ 'peak backends (pg_stat_activity)', 'backends', 0 ]);
table('many',
	[ 'total TPS', 'tps', 0 ], [ 'Jain (36 clients)', 'jain', 3 ],
	[ 'Jain (12 pools)', 'pool_jain', 3 ],
	[ 'pools with 0 tx in first 5 s', 'zero5', 0 ], [ 'pools with 0 tx at all', 'zero_all', 0 ],
	[ 'min pool TPS', 'pool_min', 0 ], [ 'max pool TPS', 'pool_max', 0 ],
	[ 'p99 ms', 'p99', 0 ], [ 'peak servers (pooler)', 'servers', 0 ],
	[ 'peak backends (pg_stat_activity)', 'backends', 0 ]);
out('', 'p99 is over completed transactions: a client that never got a backend (dropped by '
    . 'query_wait_timeout = run length + 3 s, see Problems) adds no latency, only a zero rate.')
    if $RES{many};
out('', 'Peak servers are the pooler\'s own count (SHOW POOLS, polled every 50 ms); '
    . 'pg_stat_activity can show one or two more for a moment while a closed backend exits.')
    if grep { $RES{$_} } qw(skew many late long);
table('late',
	[ 'late pool: first tx after (s)', 'first', 2 ],
	[ 'late tx/s per client', 'late_pc', 1 ], [ 'big tx/s per client', 'big_pc', 1 ],
	[ 'late/big per client', 'ratio', 2 ], [ 'Jain (28 clients, both running)', 'jain', 3 ],
	[ 'late p99 ms', 'late_p99', 0 ], [ 'peak servers (pooler)', 'servers', 0 ],
	[ 'peak backends (pg_stat_activity)', 'backends', 0 ]);
table('long',
	[ 'short: first tx after (s)', 'first', 2 ], [ 'short TPS', 'short_tps', 0 ],
	[ 'short p50 ms', 'short_p50', 0 ], [ 'short p99 ms', 'short_p99', 0 ],
	[ 'short max ms', 'short_max', 0 ], [ 'long TPS', 'long_tps', 2 ],
	[ 'peak servers (pooler)', 'servers', 0 ],
	[ 'peak backends (pg_stat_activity)', 'backends', 0 ]);
out('', '**Problems:** ' . join('; ', @NOTES)) if @NOTES;
out('', sprintf('_%d s in all; bench/budget_bench.pl_', time - $T0));

my $md = join("\n", @MD) . "\n";
print $md;
make_path($OUT);
open(my $fh, '>', "$OUT/budget.md") or die "$OUT/budget.md: $!";
print $fh $md;
close $fh;
progress('wrote %s/budget.md', $OUT);
alarm(0);
$direct->disconnect;
exit($stopped_early ? 1 : 0);
