# 014_concurrency.pl -- 200 clients through a pool of 10 with exact results, and pgbench runs without failures.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

use constant { CLIENTS => 200, XACTS => 50, POOL => 10 };

my $node = PgSlab::Test::Cluster->new(name => 'c014');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE counter (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO counter VALUES (1, 0);
CREATE TABLE hits (client int NOT NULL, pid int NOT NULL, xid bigint NOT NULL);
GRANT ALL ON counter, hits TO app;
SQL
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p014',
	settings => {
		pool_mode         => 'transaction',
		max_client_conn   => 250,
		default_pool_size => POOL,
	},
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my $direct = $node->connect_dbi('postgres');

# --- 200 clients x 50 transactions through 10 server connections ----------------------------------
my $script = $proxy->basedir . '/counter.sql';
open(my $fh, '>', $script) or die;
print $fh <<'SQL';
BEGIN;
UPDATE counter SET n = n + 1 WHERE id = 1;
INSERT INTO hits (client, pid, xid) VALUES (:client_id, pg_backend_pid(), txid_current());
COMMIT;
SQL
close $fh;

my $out_file = $proxy->basedir . '/bench200.out';
my $err_file = $proxy->basedir . '/bench200.err';
my $t0 = time;
my $pid = PgSlab::Test::Cluster::spawn_command(
	[ pg_bindir() . '/pgbench', '-n', '-f', $script, '-c', CLIENTS, '-j', '2',
	  '-t', XACTS, 'postgres' ],
	env => { PGHOST => $proxy->host, PGPORT => $proxy->port, PGUSER => 'app',
		PGPASSWORD => 'app_pw', PGCONNECT_TIMEOUT => 10, LC_ALL => 'C' },
	stdout_file => $out_file, stderr_file => $err_file);

# Watch the server meanwhile: pgslab must never use more than 10 backends.
my ($peak, $samples, $status) = (0, 0);
while (time - $t0 < 60) {
	my $n = $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
		WHERE usename = 'app' AND backend_type = 'client backend'});
	$samples++;
	$peak = $n if $n > $peak;
	$status = PgSlab::Test::Cluster::wait_pid($pid, 0);
	last if defined $status;
	sleep(0.02);
}
unless (defined $status) {
	kill 'KILL', $pid;
	waitpid($pid, 0);
}
my $elapsed = time - $t0;
my $bout = PgSlab::Test::Cluster::_slurp($out_file);
my $berr = PgSlab::Test::Cluster::_slurp($err_file);
diag(sprintf('200 x 50 transactions: %.1fs, %d pg_stat_activity samples', $elapsed, $samples));
is($status, 0, 'pgbench -c 200 -j 2 -t 50 through pgslab exits 0') or diag("$berr\n$bout");
like($bout, qr{number of transactions actually processed: 10000/10000}, '10000/10000 transactions processed')
    or diag($bout);
like($bout, qr/number of failed transactions: 0 /, 'zero failed transactions');
ok($peak >= 1 && $peak <= POOL, "pg_stat_activity: at most 10 app backends at any time (peak $peak)");

is($direct->selectrow_array('SELECT n FROM counter WHERE id = 1'), CLIENTS * XACTS,
	'counter incremented exactly 10000 times');
is($direct->selectrow_array('SELECT count(*) FROM hits'), CLIENTS * XACTS, 'exactly 10000 rows inserted');
is($direct->selectrow_array('SELECT count(DISTINCT xid) FROM hits'), CLIENTS * XACTS,
	'each pgbench transaction was one server transaction');
my $pids = $direct->selectrow_array('SELECT count(DISTINCT pid) FROM hits');
ok($pids >= 1 && $pids <= POOL, "all transactions ran on at most 10 distinct backends ($pids)");
is_deeply($direct->selectall_arrayref(
	'SELECT count(*) AS clients, min(c), max(c) FROM (SELECT client, count(*) AS c FROM hits GROUP BY client) s'),
	[ [ CLIENTS, XACTS, XACTS ] ], 'each of the 200 clients committed exactly 50 transactions');
my @pool = grep { $_->{user} eq 'app' } $proxy->admin_hash('SHOW POOLS');
ok(@pool && $pool[0]{sv_active} + $pool[0]{sv_idle} + $pool[0]{sv_used} <= POOL,
	'SHOW POOLS: at most 10 server connections in the pool');

# --- pgbench workloads: zero failures ----------------------------------------------------------------------
my ($rc, $out, $err) = $proxy->pgbench('-i', '-s', '2', '-q');
is($rc, 0, 'pgbench -i -s 2 through pgslab') or diag($err);
for my $run (
	[ 'select-only -S -c 20 -T 3', '-S', '-c', '20', '-j', '2', '-T', '3' ],
	[ 'TPC-B -c 10 -T 3', '-c', '10', '-j', '2', '-T', '3' ],
	[ 'TPC-B -M extended -c 10 -t 100', '-M', 'extended', '-c', '10', '-j', '2', '-t', '100' ],
	[ 'reconnect -C -S -c 4 -t 100', '-C', '-S', '-c', '4', '-j', '2', '-t', '100' ],
    ) {
	my ($name, @args) = @$run;
	$t0 = time;
	($rc, $out, $err) = $proxy->pgbench('-n', @args, { timeout => 60 });
	is($rc, 0, "pgbench $name: exit 0") or diag($err);
	like($out, qr/number of failed transactions: 0 /, "pgbench $name: zero failed transactions")
	    or diag($out);
	my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
	ok(($done // 0) > 0, "pgbench $name: processed " . ($done // 0) . sprintf(' in %.1fs', time - $t0));
}
my $hist = $direct->selectrow_array('SELECT count(*) FROM pgbench_history');
ok($hist > 1000, "pgbench_history has the TPC-B rows ($hist)");

ok($proxy->is_running, 'pgslab still running');
$direct->disconnect;
is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
