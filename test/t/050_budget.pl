# 050_budget.pl -- backend slots as buddy blocks: parallel cold start, pools
# sharing one max_db_connections fairly, slots given back, pool hit rates.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c050', max_connections => 120);
$node->start;
for my $u (qw(big small cold)) {
	$node->create_user($u, "${u}_pw");
}
my $direct = $node->connect_dbi('postgres');

sub backends
{
	my ($user) = @_;
	return $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
		WHERE usename = ? AND backend_type = 'client backend'}, undef, $user);
}

sub spawn_pgbench
{
	my ($proxy, $user, $file, @args) = @_;
	my $out = $proxy->basedir . "/$user.out";
	my $pid = PgSlab::Test::Cluster::spawn_command(
		[ pg_bindir() . '/pgbench', '-n', @args, 'postgres' ],
		env => { PGHOST => $proxy->host, PGPORT => $proxy->port, PGUSER => $user,
			PGPASSWORD => "${user}_pw", PGCONNECT_TIMEOUT => 20, LC_ALL => 'C' },
		stdout_file => $out, stderr_file => $proxy->basedir . "/$user.err");
	return ($pid, $out);
}

sub pgbench_result
{
	my ($pid, $out) = @_;
	my $st = PgSlab::Test::Cluster::wait_pid($pid, 60);
	open(my $fh, '<', $out) or return (undef, undef);
	local $/;
	my $text = <$fh>;
	my ($n) = $text =~ /number of transactions actually processed: (\d+)/;
	my ($failed) = $text =~ /number of failed transactions: (\d+)/;
	return ($st, $n, $failed);
}

# --- cold start: every server login takes 1 s (connect_query) ---------------------------
# 30 clients arrive at an empty pool of 30: pgslab opens backends in parallel
# (PgBouncer opens one at a time), so many logins are in flight at once.
{
	my $proxy = PgSlab::Test::Proxy->new(
		cluster   => $node,
		name      => 'p050a',
		databases => { postgres => 'host=127.0.0.1 port=' . $node->port .
			" dbname=postgres connect_query='SELECT pg_sleep(1)'" },
		settings  => { pool_mode => 'transaction', default_pool_size => 30,
			max_client_conn => 100 },
		userlist  => userlist_from_cluster($node, 'cold'));
	$proxy->start;
	my $script = $proxy->basedir . '/one.sql';
	open(my $fh, '>', $script) or die;
	print $fh "SELECT pg_sleep(1);\n";
	close $fh;
	my ($pid, $out) = spawn_pgbench($proxy, 'cold', $script, '-f', $script, '-c', 30, '-j', 2,
		'-t', 1);
	my $peak = 0;
	my $t0 = time;
	while (time - $t0 < 8) {
		my $n = $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
			WHERE usename = 'cold' AND query = 'SELECT pg_sleep(1)' AND state = 'active'});
		$peak = $n if $n > $peak;
		last if $peak >= 30;
		sleep 0.05;
	}
	my ($st, $n, $failed) = pgbench_result($pid, $out);
	is($st, 0, 'cold start: pgbench succeeded');
	is($n, 30, 'cold start: 30 transactions');
	is($failed, 0, 'cold start: none failed');
	cmp_ok($peak, '>=', 10, "cold start: logins run in parallel (peak $peak concurrent connect_query)");
	$proxy->stop;
}

# --- two pools under max_db_connections = 8, skewed load ------------------------------
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p050b',
	settings => {
		pool_mode           => 'transaction',
		default_pool_size   => 20,
		max_db_connections  => 8,
		max_client_conn     => 200,
		server_idle_timeout => 1,
		query_wait_timeout  => 60,
	},
	userlist => userlist_from_cluster($node, 'big', 'small'));
$proxy->start;
my $script = $proxy->basedir . '/sleep.sql';
open(my $fh, '>', $script) or die;
print $fh "SELECT pg_sleep(0.02);\n";
close $fh;

my ($bpid, $bout) = spawn_pgbench($proxy, 'big', $script, '-f', $script, '-c', 24, '-j', 2,
	'-T', 6);
sleep 1.5;    # the small pool joins late, when the budget is all taken
my ($spid, $sout) = spawn_pgbench($proxy, 'small', $script, '-f', $script, '-c', 4, '-j', 1,
	'-T', 4);
my $over = 0;
my $t0 = time;
my $small_peak = 0;
while (time - $t0 < 5) {
	my $b = backends('big');
	my $s = backends('small');
	$over++ if $b + $s > 8;
	$small_peak = $s if $s > $small_peak;
	sleep 0.1;
}
my ($bst, $bn, $bfail) = pgbench_result($bpid, $bout);
my ($sst, $sn, $sfail) = pgbench_result($spid, $sout);
is($bst, 0, 'skewed: big pool pgbench succeeded');
is($sst, 0, 'skewed: small pool pgbench succeeded');
is($bfail, 0, 'skewed: big pool, no failed transactions');
is($sfail, 0, 'skewed: small pool, no failed transactions');
is($over, 0, 'skewed: never more than max_db_connections backends');
cmp_ok($small_peak, '>=', 1, "skewed: the late pool got slots back from the big one (peak $small_peak)");
# Per-client fairness: shares follow demand (24 vs 4 clients), so every
# client should see about the same rate whichever pool it is in.
my $big_rate = ($bn // 0) / 24 / 6;
my $small_rate = ($sn // 0) / 4 / 4;
my @rates = ((($big_rate) x 24), (($small_rate) x 4));
my ($sum, $sq) = (0, 0);
$sum += $_ for @rates;
$sq += $_ * $_ for @rates;
my $jain = $sq > 0 ? $sum * $sum / (@rates * $sq) : 0;
cmp_ok($jain, '>=', 0.8,
	sprintf('skewed: per-client rates are fair, Jain index %.3f (%.1f vs %.1f tx/s per client)',
		$jain, $small_rate, $big_rate));

# --- idle pools give their slots back -------------------------------------------------
my $gone = 0;
for (1 .. 60) {
	if (backends('big') == 0 && backends('small') == 0) {
		$gone = 1;
		last;
	}
	sleep 0.1;
}
ok($gone, 'idle pools closed their backends after server_idle_timeout');
my @buddy = $proxy->admin_hash('SHOW BUDDY');
my ($dom) = grep { $_->{type} eq 'domain' && $_->{database} eq 'postgres' } @buddy;
ok($dom, 'SHOW BUDDY has the database budget domain');
is($dom->{slots}, 8, 'SHOW BUDDY: the domain budget is max_db_connections');
my $held = 8;
for (1 .. 40) {
	($dom) = grep { $_->{type} eq 'domain' && $_->{database} eq 'postgres' }
		$proxy->admin_hash('SHOW BUDDY');
	$held = $dom->{used};
	last if $held == 0;
	sleep 0.1;
}
is($held, 0, 'SHOW BUDDY: idle pools gave their slots back to the budget');
is($dom->{blocks}, '1x8', 'SHOW BUDDY: the free blocks merged back into one block of 8');
my ($bigrow) = grep { $_->{type} eq 'pool' && $_->{user} eq 'big' } $proxy->admin_hash('SHOW BUDDY');
cmp_ok($bigrow->{taken}, '>=', 1, "SHOW BUDDY: slots were taken back from the big pool ($bigrow->{taken})");
cmp_ok($bigrow->{grows}, '>=', 2, "SHOW BUDDY: the big pool grew in blocks ($bigrow->{grows} grows)");
my ($w) = grep { $_->{user} eq 'big' } $proxy->admin_hash('SHOW WAITS');
cmp_ok($w->{waits}, '>', 0, "SHOW WAITS: the contended pool's waits are counted ($w->{waits})");
my $bucket_sum = 0;
$bucket_sum += $w->{$_} for grep { /^wait_(lt|ge)_/ } keys %$w;
is($bucket_sum, $w->{waits}, 'SHOW WAITS: the histogram buckets add up to the waits');

# --- hit rate: a steady load on a warm pool is served by idle servers -------------------
my $select = $proxy->basedir . '/select.sql';
open($fh, '>', $select) or die;
print $fh "SELECT 1;\n";
close $fh;
my ($rc) = $proxy->pgbench('-n', '-f', $select, '-c', 4, '-t', 300, 'postgres',
	{ env => { PGUSER => 'small', PGPASSWORD => 'small_pw' } });
my ($before) = grep { $_->{user} eq 'small' } $proxy->admin_hash('SHOW POOLS');
($rc) = $proxy->pgbench('-n', '-f', $select, '-c', 4, '-t', 500, 'postgres',
	{ env => { PGUSER => 'small', PGPASSWORD => 'small_pw' } });
is($rc, 0, 'steady -S run on a warm pool');
my ($pool) = grep { $_->{user} eq 'small' } $proxy->admin_hash('SHOW POOLS');
ok($pool && $before, 'SHOW POOLS has the small pool');
my $hits = $pool->{hits} - $before->{hits};
my $misses = $pool->{misses} - $before->{misses};
is($hits + $misses, 2000, 'hits + misses count every assignment of the run (4 x 500)');
cmp_ok($hits / 2000, '>=', 0.9, "warm pool, 4 clients: hit rate of the run >= 90% ($hits/2000)");
cmp_ok($pool->{hit_rate}, '>', 0, "SHOW POOLS hit_rate column ($pool->{hit_rate})");

$proxy->stop;
done_testing();
