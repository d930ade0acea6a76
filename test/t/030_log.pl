# 030_log.pl -- the asynchronous log writer under load: a stalled logfile, SIGHUP reopen, shutdown flush.
#
# (a) pgslab's logfile is a FIFO whose reader (a forked perl process)
#     shrinks the pipe to 4 KiB, reads a little and then stops reading for
#     STALL seconds while pgbench runs through pgslab with connection churn
#     and log_connections/log_disconnections on.  Transactions must keep
#     completing, the admin console must answer, and once the reader resumes
#     the "N log lines dropped" notices must account for exactly the lines
#     that are missing.  A second, shorter stall covers shutdown: pgslab is
#     stopped with a backlog queued and must write all of it before exiting.
# (b) SIGHUP after `mv pgslab.log pgslab.log.1` reopens the logfile.
# (c) shutdown writes everything, "shutting down" last.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

use constant STALL      => 5;	# seconds the FIFO reader stops reading
use constant STALL2     => 30;	# the second stall, across shutdown: at most this, until released
use constant BENCH_SECS => 4;
use constant F_SETPIPE_SZ => 1031;

# A watchdog: a FIFO can block a test forever; die (and tear down) instead.
$SIG{ALRM} = sub { die "030_log.pl: watchdog timeout\n" };
alarm 150;

my $LINE_RE = qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] (?:LOG|WARNING|ERROR|FATAL|DEBUG|NOISE) /;

my $node = PgSlab::Test::Cluster->new(name => 'c030');
$node->start;
$node->create_user('app', 'app_pw');
my ($rc, $out, $err) = $node->pgbench('-i', '-q', '-s', '1', 'postgres');
is($rc, 0, 'pgbench -i') or diag($err);
$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app');
my $cport = $node->port;
my %app = (user => 'app', password => 'app_pw');

sub slurp { PgSlab::Test::Cluster::_slurp($_[0]) }

sub touch
{
	open(my $fh, '>', $_[0]) or die "touch $_[0]: $!";
	close $fh;
}

sub wait_until
{
	my ($cond, $timeout) = @_;
	my $deadline = time() + $timeout;
	while (1) {
		return 1 if $cond->();
		return 0 if time() >= $deadline;
		sleep(0.05);
	}
}

# Fork the FIFO reader.  It copies <fifo> to <outfile> and, whenever the file
# "<ctl>.stallN" appears (N = 1, 2, ...), stops reading for $pauses->[N-1]
# seconds, leaving "<ctl>.stalledN" and "<ctl>.resumedN" behind.  Exits at EOF.
sub start_reader
{
	my ($fifo, $outfile, $ctl, $pauses) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	return $pid if $pid;
	$SIG{$_} = 'DEFAULT' for qw(INT TERM QUIT HUP ALRM);
	alarm 0;
	my $ok = eval {
		open(my $in, '<', $fifo) or die "open $fifo: $!";	# waits for pgslab
		fcntl($in, F_SETPIPE_SZ, 4096);		# a small pipe: the stall bites at once
		open(my $o, '>', $outfile) or die "open $outfile: $!";
		my $next = 1;
		while (1) {
			if ($next <= @$pauses && -e "$ctl.stall$next") {
				touch("$ctl.stalled$next");
				# stall for the given time, or until the test releases us
				my $until = time() + $pauses->[ $next - 1 ];
				sleep(0.05) while time() < $until && !-e "$ctl.release$next";
				touch("$ctl.resumed$next");
				$next++;
			}
			my $rin = '';
			vec($rin, fileno($in), 1) = 1;
			next unless select(my $rout = $rin, undef, undef, 0.02) > 0;
			my $n = sysread($in, my $buf, 65536);
			die "read: $!" unless defined $n;
			last if $n == 0;
			syswrite($o, $buf) == length($buf) or die "write: $!";
		}
		close $o;
		1;
	};
	print STDERR "[reader] $@" unless $ok;
	POSIX::_exit($ok ? 0 : 1);
}

# pgbench through the proxy in the background; returns (pid, outfile, errfile).
sub spawn_pgbench
{
	my ($proxy, $tag, @args) = @_;
	my $o = $proxy->basedir . "/pgbench_$tag.out";
	my $e = $proxy->basedir . "/pgbench_$tag.err";
	my $pid = PgSlab::Test::Cluster::spawn_command(
		[ PgSlab::Test::Cluster::pg_bindir() . '/pgbench', @args ],
		stdout_file => $o,
		stderr_file => $e,
		env => { PGHOST => $proxy->host, PGPORT => $proxy->port, PGUSER => 'app',
			PGPASSWORD => 'app_pw', PGCONNECT_TIMEOUT => 10, LC_ALL => 'C' });
	return ($pid, $o, $e);
}

# { tx, failed, progress => [[t, tps], ...], rc }
sub pgbench_result
{
	my ($pid, $o, $e) = @_;
	my $st = PgSlab::Test::Cluster::wait_pid($pid, 30);
	my $txt = slurp($o) . slurp($e);
	my %r = (rc => defined $st ? $st >> 8 : -1, text => $txt, progress => []);
	($r{tx}) = $txt =~ /number of transactions actually processed: (\d+)/;
	($r{failed}) = $txt =~ /number of failed transactions: (\d+)/;
	$r{tx} //= 0;
	push @{ $r{progress} }, [ $1, $2 ] while $txt =~ /^progress: ([\d.]+) s, ([\d.]+) tps/mg;
	return \%r;
}

# SHOW LOG as a hashref, or undef while the admin console has no such command.
sub show_log
{
	my ($proxy) = @_;
	my @rows = eval { $proxy->admin_hash('SHOW LOG') };
	return undef unless @rows && defined $rows[0]{records};
	return $rows[0];
}

sub client_logins
{
	my ($proxy, $db) = @_;
	my ($row) = grep { $_->{database} eq $db } $proxy->admin_hash('SHOW STATS');
	return $row ? $row->{total_client_login_count} : undef;
}

# "shutting down" is in <lines>, and only the servers' shutdown closes
# (logged as the pools are torn down) come after it.
sub shutdown_ok
{
	my ($lines, $what) = @_;
	my ($at) = grep { $lines->[$_] =~ / LOG shutting down$/ } reverse 0 .. $#$lines;
	ok(defined $at, "$what: the \"shutting down\" line is in the file");
	my @after = defined $at ? @$lines[ $at + 1 .. $#$lines ] : ();
	my @other = grep { !/ LOG S-\d+: \S+ closing because: shutdown / } @after;
	ok(defined $at && !@other, "$what: ... followed only by server closes ("
	    . scalar(@after) . ')') or diag(join("\n", @other));
}

# ---------------------------------------------------------------------------
# (a) a stalled logfile
# ---------------------------------------------------------------------------

my $pa = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p030a',
	databases => {
		churn => "host=127.0.0.1 port=$cport dbname=postgres",
		burst => "host=127.0.0.1 port=$cport dbname=postgres",
	},
	settings  => {
		log_connections    => 1,
		log_disconnections => 1,
		log_queue_size     => 64,
		default_pool_size  => 12,
	},
	args     => ['-q'],
	userlist => userlist_from_cluster($node, 'app'));
my $dir  = $pa->basedir;
my $fifo = "$dir/pgslab.fifo";
my $got  = "$dir/fifo.out";
my $ctl  = "$dir/reader";
POSIX::mkfifo($fifo, 0600) or die "mkfifo: $!";
# Keep the harness's log_content() (which reads settings{logfile}) away from
# the FIFO: the copy goes to pgslab.log once the reader is done.
$pa->set(logfile => $fifo);
my $reader = start_reader($fifo, $got, $ctl, [ STALL, STALL2 ]);
$pa->start;

ok(wait_until(sub { slurp($got) =~ /listening on port/ }, 5), 'reader gets the startup line');
my $logins0 = client_logins($pa, 'churn') // 0;
my $has_show_log = defined show_log($pa);
diag($has_show_log ? 'SHOW LOG available: checking counters against it'
    : 'SHOW LOG not available yet: checking the log text against SHOW STATS');

my @fixed = spawn_pgbench($pa, 'fixed', '-n', '-S', '-c', '2', '-j', '1',
	'-T', BENCH_SECS, '-P', '1', 'churn');
my @churn = spawn_pgbench($pa, 'churn', '-n', '-S', '-C', '-c', '8', '-j', '2',
	'-T', BENCH_SECS, '-P', '1', 'churn');
my $t0 = time();
sleep(0.5);
touch("$ctl.stall1");
ok(wait_until(sub { -e "$ctl.stalled1" }, 2), 'reader stopped reading');
sleep(1.2);

# The event loop must not be waiting on the log.
my $q0 = time();
my @ver = eval { $pa->admin('SHOW VERSION') };
my $qdt = time() - $q0;
my $during = -e "$ctl.stalled1" && !-e "$ctl.resumed1";
ok(@ver && $ver[0][0] =~ /pgslab/, 'admin console answers during the stall') or diag($@);
diag(sprintf('SHOW VERSION during the stall took %.3f s', $qdt));
ok($during, '... while the reader is still stalled (a loop blocked on the log would answer only after it)');
my $mid = $has_show_log ? show_log($pa) : undef;
if ($mid) {
	cmp_ok($mid->{dropped}, '>', 0, "SHOW LOG during the stall: records are being dropped ($mid->{dropped})");
}

my $fr = pgbench_result(@fixed);
my $cr = pgbench_result(@churn);
my $bench_end = time();
my $stalled_through = !-e "$ctl.resumed1";
ok($stalled_through, sprintf('pgbench finished (%.1f s) before the reader resumed', $bench_end - $t0));
# Throughput is not asserted (2 shared cores): a loop blocked on the log would
# stop transactions for the whole stall, which the per-second check catches.
for my $r ([ fixed => $fr, BENCH_SECS ], [ churn => $cr, BENCH_SECS ]) {
	my ($name, $res, $floor) = @$r;
	is($res->{rc}, 0, "pgbench $name exit 0") or diag($res->{text});
	is($res->{failed} // 0, 0, "pgbench $name: no failed transactions");
	cmp_ok($res->{tx}, '>', $floor, "pgbench $name: $res->{tx} transactions > $floor");
	# Progress intervals [1,2) .. [BENCH_SECS-1, BENCH_SECS) lie inside the stall.
	my @in = grep { $_->[0] >= 2 } @{ $res->{progress} };
	ok(@in >= BENCH_SECS - 2 && !grep({ $_->[1] <= 0 } @in),
		"pgbench $name: transactions completed in every second of the stall ("
		    . join(', ', map { "$_->[0]s: $_->[1] tps" } @{ $res->{progress} }) . ')');
}

ok(wait_until(sub { -e "$ctl.resumed1" }, STALL + 3), 'reader resumed');
# Let the writer drain the backlog, then make the loop log again so the
# drop notice goes out.
wait_until(sub {
	my $a = -s $got;
	sleep(0.3);
	return $a == -s $got;
}, 10);
my $logins = client_logins($pa, 'churn');
my $after = $has_show_log ? show_log($pa) : undef;
ok(wait_until(sub { slurp($got) =~ /log lines dropped/ }, 5), 'a "log lines dropped" notice arrives');

# Second stall across shutdown: queue a backlog (and drops), then SIGINT.
touch("$ctl.stall2");
ok(wait_until(sub { -e "$ctl.stalled2" }, 2), 'reader stalls again');
# About 60 lines: more than the 4 KiB pipe holds, less than it and the ring
# (64 records) together, so some stay queued in pgslab and none is dropped.
my @burst = spawn_pgbench($pa, 'burst', '-n', '-S', '-C', '-c', '1', '-t', '30', 'burst');
my $br = pgbench_result(@burst);
is($br->{rc}, 0, 'pgbench burst during the second stall') or diag($br->{text});
ok(!-e "$ctl.resumed2", '... finished while the reader was stalled');
my $burst_logins = client_logins($pa, 'burst');
$pa->kill_signal('INT');
sleep(1);
ok($pa->is_running, 'after SIGINT pgslab waits for its queued log lines to be written');
touch("$ctl.release2");
is($pa->wait_exit(timeout => 20), 0, 'pgslab exits cleanly once the log drains');
ok(-e "$ctl.resumed2", '... only after the reader resumed');
my $rst = PgSlab::Test::Cluster::wait_pid($reader, 10);
is($rst, 0, 'reader saw EOF and exited');

my $text = slurp($got);
PgSlab::Test::Cluster::_write_file($pa->logfile, $text);	# for diag on failure
my @lines = split /\n/, $text;
ok(length($text) && substr($text, -1) eq "\n", 'log ends with a complete line');
my @bad = grep { !/$LINE_RE/ } @lines;
is(scalar(@bad), 0, 'every line is whole and well-formed') or diag(join("\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)]));
shutdown_ok(\@lines, '(c) stalled logfile');

# Account for the client lines.  Each client login logs "login attempt" and,
# when it leaves, "closing because"; SHOW STATS counts the logins per
# database.  The first stall's drops are reported before the burst (database
# "burst") starts; the burst must lose nothing.
my ($dropped1, $dropped2, $present1, $present2, $in_burst) = (0, 0, 0, 0, 0);
for my $l (@lines) {
	if ($l =~ / WARNING (\d+) log lines dropped \((\d+) of them WARNING or ERROR\)$/) {
		if ($in_burst) { $dropped2 += $1 } else { $dropped1 += $1 }
	} elsif ($l =~ / LOG C-\d+: (churn|burst)\/app@\S+ (?:login attempt|closing because)/) {
		$in_burst = 1 if $1 eq 'burst';
		if ($1 eq 'burst') { $present2++ } else { $present1++ }
	}
}
my $expect1 = 2 * ($logins - $logins0);
my $missing1 = $expect1 - $present1;
my $expect2 = 2 * ($burst_logins // 0);
my $missing2 = $expect2 - $present2;
diag("stall 1: $expect1 client lines expected, $present1 present, $missing1 missing, "
    . "$dropped1 reported dropped; stall 2: $expect2 expected, $present2 present, "
    . "$dropped2 dropped; the log has ${\ scalar @lines} lines");
cmp_ok($logins - $logins0, '>=', $cr->{tx} + 2,
	"logins (${\ ($logins - $logins0)}) cover pgbench's connections (churn $cr->{tx} + fixed 2)");
cmp_ok($missing1, '>', 0, 'the stall cost log lines');
cmp_ok($dropped1, '>=', $missing1, 'drop notices account for every missing client line');
# Other records that could be dropped in the stall: server and admin lines.
cmp_ok($dropped1 - $missing1, '<=', 40, '... and for little else');
cmp_ok($burst_logins // 0, '>=', 30, 'burst logins counted');
is($present2, $expect2, 'every client line queued across the stalled shutdown was written');
is($dropped2, 0, '... and nothing was dropped');
if ($has_show_log) {
	ok($after, 'SHOW LOG after the stall');
	cmp_ok($after->{dropped}, '==', $dropped1, 'SHOW LOG dropped == sum of the notices');
	cmp_ok($after->{queue_high_water}, '<=', 64, 'queue high water within log_queue_size')
	    if defined $after->{queue_high_water};
	if (defined $after->{pending}) {
		# written and pending are read apart and may overlap by one record
		my $d = $after->{written} + $after->{dropped} + $after->{pending} - $after->{records};
		ok($d >= 0 && $d <= 1, "records == written + dropped + pending (off by $d)");
	} else {
		cmp_ok($after->{records}, '>=', $after->{written} + $after->{dropped},
			'records >= written + dropped');
	}
}

# ---------------------------------------------------------------------------
# (b) SIGHUP reopen and (c) shutdown flush on a regular file
# ---------------------------------------------------------------------------

my $pb = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p030b',
	databases => { churn => "host=127.0.0.1 port=$cport dbname=postgres" },
	settings  => { log_connections => 1, log_disconnections => 1 },
	args      => ['-q'],
	userlist  => userlist_from_cluster($node, 'app'));
$pb->start;
my $log = $pb->logfile;
is($pb->safe_psql('churn', 'SELECT 1', %app), '1', 'connection before SIGHUP');
ok($pb->wait_for_log(qr/C-\d+: churn\/app\S+ closing because/), '... logged');
my ($id1) = slurp($log) =~ /C-(\d+): churn\/app\S+ login attempt/;
rename($log, "$log.1") or die "rename: $!";
ok($pb->kill_signal('HUP'), 'SIGHUP sent');
ok(wait_until(sub { slurp($log) =~ /configuration reloaded/ }, 5),
	'a new pgslab.log is created with the lines after the reopen');
is($pb->safe_psql('churn', 'SELECT 2', %app), '2', 'connection after SIGHUP');
ok(wait_until(sub { slurp($log) =~ /closing because/ }, 5), '... logged');
my ($id2) = slurp($log) =~ /C-(\d+): churn\/app\S+ login attempt/;
my $old = slurp("$log.1");
my $new = slurp($log);
ok(defined $id1 && defined $id2 && $id1 != $id2, "two clients (C-$id1, C-" . ($id2 // '?') . ')');
like($old, qr/listening on port.*C-$id1: churn.*login attempt.*got SIGHUP/s,
	'pgslab.log.1 has the startup, the first client and the SIGHUP');
unlike($old, qr/C-$id2:|configuration reloaded/, '... and nothing after the reopen');
unlike($new, qr/listening on port|C-$id1:|got SIGHUP/, 'pgslab.log has nothing from before');
like($new, qr/configuration reloaded.*C-$id2: churn\S+ login attempt.*C-$id2: \S+ closing because/s,
	'... and the reload and the second client');

# (c) shutdown on a regular file: everything written, "shutting down" last.
my $nlogins = client_logins($pb, 'churn');
is($pb->stop, 0, 'pgslab exits cleanly on SIGINT');
$new = slurp($log);
my @nl = split /\n/, $new;
shutdown_ok(\@nl, '(c) regular file');
ok(!grep({ !/$LINE_RE/ } @nl), 'every line well-formed');
is(scalar(() = $new =~ /C-\d+: churn\/\S+ login attempt/g), $nlogins - 1,
	'every login after the reopen is in the new file (no drops)');
unlike($new, qr/log lines dropped/, 'no drop notice');

alarm 0;
done_testing();
