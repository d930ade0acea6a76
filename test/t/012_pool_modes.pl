# 012_pool_modes.pl -- session, transaction and statement pooling: state kept, state reset, no dirty backends.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use DBD::Pg qw(:async);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c012');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', 'CREATE TABLE t012 (id int PRIMARY KEY, who text); GRANT ALL ON t012 TO app;');
my $cport = $node->port;
my $dsn = "host=127.0.0.1 port=$cport dbname=postgres";

# Pool size 1 everywhere: the next client is guaranteed the same backend.
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p012',
	databases => {
		sessdb => "$dsn pool_mode=session pool_size=1",
		txdb   => "$dsn pool_mode=transaction pool_size=1",
		stmtdb => "$dsn pool_mode=statement pool_size=1",
	},
	settings => { default_pool_size => 1 },
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my %app = (user => 'app', password => 'app_pw');
my $direct = $node->connect_dbi('postgres');

sub app_conn { return $proxy->connect_dbi($_[0], %app, attrs => $_[1] // {}) }

sub rows { return $direct->selectrow_array('SELECT count(*) FROM t012 WHERE ' . $_[0]) }

# A backend handed to a client is clean when it is not inside a transaction
# block (then now() = statement_timestamp() for a single statement) and is idle.
sub clean_backend_ok
{
	my ($dbh, $name) = @_;
	my ($fresh, $xid) = $dbh->selectrow_array(
		'SELECT now() = statement_timestamp(), txid_current_if_assigned() IS NULL');
	ok($fresh && $xid, "$name: the backend is not inside an old transaction");
}

sub backend_state
{
	my ($pid) = @_;
	return $direct->selectrow_array('SELECT state FROM pg_stat_activity WHERE pid = ?',
		undef, $pid) // 'gone';
}

# State of a backend once it stops being 'active'/'idle in transaction'
# (server-side termination is asynchronous); 'gone' if it exited.
sub settle_backend
{
	my ($pid) = @_;
	my $st;
	for (1 .. 40) {
		$st = backend_state($pid);
		last if $st eq 'gone' || $st eq 'idle';
		sleep(0.05);
	}
	return $st;
}

# Backends of user app, not counting the session pool's ($sess_pid).
my $sess_pid = 0;
sub app_backends
{
	return $direct->selectrow_array(q{SELECT count(*) FROM pg_stat_activity
		WHERE usename = 'app' AND backend_type = 'client backend' AND pid <> ?},
		undef, $sess_pid);
}

# Opens a client in a child process, runs $sql statements in an open
# transaction and dies without closing the socket cleanly (no Terminate).
sub die_inside_transaction
{
	my ($db, @sql) = @_;
	my $pid = fork() // die "fork: $!";
	if (!$pid) {
		my $h;		# stays alive until _exit: DESTROY would roll back
		my $ok = eval {
			$h = app_conn($db);
			$h->{InactiveDestroy} = 1;
			$h->begin_work;
			$h->do($_) for @sql;
			1;
		};
		POSIX::_exit($ok ? 0 : 1);
	}
	waitpid($pid, 0);
	return $? == 0;
}

# --- session mode ---------------------------------------------------------------------------------
my $h = app_conn('sessdb');
my $pid1 = $h->selectrow_array('SELECT pg_backend_pid()');
$h->do("SET work_mem = '7MB'");
$h->do("SET application_name = 'sess-client-1'");
$h->do('CREATE TEMP TABLE tmp_state (x int)');
$h->do('INSERT INTO tmp_state VALUES (1), (2)');
$h->do("PREPARE ps_state AS SELECT 'prepared'");
$h->do('SELECT pg_advisory_lock(12345)');
$h->do('LISTEN chan_state');
is($h->selectrow_array('SHOW work_mem'), '7MB', 'session: SET persists across statements');
is($h->selectrow_array('SELECT count(*) FROM tmp_state'), 2, 'session: temp table persists');
is($h->selectrow_array('EXECUTE ps_state'), 'prepared', 'session: prepared statement persists');
is($h->selectrow_array('SELECT pg_backend_pid()'), $pid1, 'session: same backend throughout');
$h->disconnect;

my $h2;
for (1 .. 40) {		# the reset runs asynchronously after the disconnect
	$h2 = app_conn('sessdb');
	last if backend_state($pid1) eq 'idle';
	$h2->disconnect;
	sleep(0.05);
}
is($h2->selectrow_array('SELECT pg_backend_pid()'), $pid1,
	'session: the next client gets the same backend (pool_size 1)');
is($h2->selectrow_array('SHOW work_mem'), '4MB', 'session: SET was reset for the next client');
isnt($h2->selectrow_array('SHOW application_name'), 'sess-client-1',
	'session: application_name was reset');
ok(!eval { $h2->do('SELECT * FROM tmp_state'); 1 }, 'session: temp table is gone for the next client');
is($h2->state, '42P01', '... 42P01');
is($h2->selectrow_array('SELECT count(*) FROM pg_prepared_statements'), 0,
	'session: prepared statements were discarded');
is($h2->selectrow_array(q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'}), 0,
	'session: advisory lock was released');
is($h2->selectrow_array('SELECT count(*) FROM pg_listening_channels()'), 0,
	'session: LISTEN was reset');
$h2->disconnect;

# Session client dies inside a transaction.
ok(die_inside_transaction('sessdb', q{INSERT INTO t012 VALUES (1, 'session-dead')}),
	'session: child client inserted in an open transaction and died');
$h = app_conn('sessdb');
clean_backend_ok($h, 'session, after a client died in a transaction');
is(rows('id = 1'), 0, 'session: the dead client\'s row was not committed');
$h->do(q{INSERT INTO t012 VALUES (2, 'session-ok')});
is(rows('id = 2'), 1, 'session: autocommit insert by the next client is committed');
$sess_pid = $h->selectrow_array('SELECT pg_backend_pid()');
$h->disconnect;

# --- transaction mode -------------------------------------------------------------------------------
my $a = app_conn('txdb');
my $b = app_conn('txdb');
$a->begin_work;
$a->do(q{INSERT INTO t012 VALUES (10, 'tx-a')});
my $apid = $a->selectrow_array('SELECT pg_backend_pid()');
$b->do('SELECT pg_backend_pid()', { pg_async => PG_ASYNC });
sleep(0.5);
ok(!$b->pg_ready, 'transaction: with pool_size 1 the second client waits while the first is in a transaction');
is(rows('id = 10'), 0, 'transaction: uncommitted row not visible');
$a->commit;
my $t0 = time;
while (!$b->pg_ready && time - $t0 < 5) { sleep(0.02) }
ok($b->pg_ready, 'transaction: the waiting client runs once the first commits');
$b->pg_result;
is(rows('id = 10'), 1, 'transaction: committed row visible');
is($a->selectrow_array('SELECT pg_backend_pid()'), $apid, 'transaction: both clients share the one backend');
$a->disconnect;
$b->disconnect;

# Client closes its socket inside an open transaction (no Terminate message).
ok(die_inside_transaction('txdb', q{INSERT INTO t012 VALUES (11, 'tx-dead')}),
	'transaction: child client inserted in an open transaction and died');
$h = app_conn('txdb');
clean_backend_ok($h, 'transaction, after a client died in a transaction');
is(rows('id = 11'), 0, 'transaction: the dead client\'s row was rolled back');
# PgBouncer closes such an "unclean server"; rolling it back and reusing
# it would do too.  Either way the old backend must not linger in its
# transaction, and the pool must not grow beyond pool_size.
my $old_state = settle_backend($apid);
ok($old_state eq 'gone' || $old_state eq 'idle',
	"transaction: the dead client's backend was closed or rolled back ($old_state)");
my $nb = app_backends();
ok($nb <= 1, "transaction: no more than pool_size (1) backends in the transaction pool ($nb)");
$h->do(q{INSERT INTO t012 VALUES (12, 'tx-next')});
is(rows('id = 12'), 1, 'transaction: the next client commits normally');
$h->disconnect;

# Same, with a Terminate message inside the transaction: psql sends it at
# the end of its input without ending the transaction.
my ($rc, $out, $perr) = $proxy->psql('txdb',
	"BEGIN;\nINSERT INTO t012 VALUES (13, 'tx-terminate');\n", %app);
is($rc, 0, 'transaction: psql ran BEGIN + INSERT and quit') or diag($perr);
$h = app_conn('txdb');
clean_backend_ok($h, 'transaction, after Terminate inside a transaction');
is(rows('id = 13'), 0, 'transaction: row of a client that quit mid-transaction not committed');

# Client disconnects in an aborted transaction.
ok(die_inside_transaction('txdb', q{INSERT INTO t012 VALUES (14, 'x')}, 'SELECT 1/0') == 0,
	'transaction: child client hit an error inside its transaction');
my $h3 = app_conn('txdb');
clean_backend_ok($h3, 'transaction, after a client died in an aborted transaction');
is($h3->selectrow_array('SELECT 3'), 3, 'transaction: next client works');
my $h3pid = $h3->selectrow_array('SELECT pg_backend_pid()');
$h3->disconnect;
$h->disconnect;
is(settle_backend($h3pid), 'idle', 'transaction: the pooled backend is idle (not idle in transaction)');
$nb = app_backends();
ok($nb <= 1, "transaction: still no more than pool_size (1) backends in the transaction pool ($nb)");

# --- statement mode ---------------------------------------------------------------------------------------
$h = app_conn('stmtdb');
is($h->selectrow_array('SELECT 40 + 2'), 42, 'statement: single statement works');
$h->do(q{INSERT INTO t012 VALUES (20, 'stmt')});
is(rows('id = 20'), 1, 'statement: autocommit insert committed');
$h->do(q{INSERT INTO t012 VALUES (21, 'stmt'); INSERT INTO t012 VALUES (22, 'stmt')});
is(rows('id IN (21, 22)'), 2, 'statement: multi-statement Query (implicit transaction) works');
is($h->selectrow_array('SELECT $1::int * 2', undef, 21), 42, 'statement: extended protocol works');

my $err;
my $ok = eval {
	$h->do('BEGIN');
	$h->do(q{INSERT INTO t012 VALUES (23, 'stmt-tx')});
	$h->do('COMMIT');
	1;
};
$err = $h->errstr // '';
ok(!$ok, 'statement: an explicit transaction block is refused') or diag('it was accepted');
like($err, qr/transaction blocks not allowed in statement pool(?:ing)? mode/,
	'... with the PgBouncer error message') or diag("error: $err");
is(rows('id = 23'), 0, 'statement: nothing of the refused transaction was committed');
my $ah = app_conn('stmtdb', { AutoCommit => 0 });
ok(!eval { $ah->do(q{INSERT INTO t012 VALUES (24, 'stmt-ac0')}); $ah->commit; 1 },
	'statement: DBD::Pg with AutoCommit off (implicit BEGIN) is refused');
is(rows('id = 24'), 0, '... and its row not committed');
$ah->{InactiveDestroy} = 1;		# already disconnected by pgslab
my $h4;
for (1 .. 40) {
	$h4 = eval { app_conn('stmtdb') };
	last if $h4 && eval { $h4->selectrow_array('SELECT 1') };
	sleep(0.05);
}
clean_backend_ok($h4, 'statement, after refused transactions');
$h4->do(q{INSERT INTO t012 VALUES (25, 'stmt-after')});
is(rows('id = 25'), 1, 'statement: a new client works afterwards');
$h4->disconnect;

my @pools = $proxy->admin_hash('SHOW POOLS');
my %mode = map { ($_->{database} => $_->{pool_mode}) } grep { $_->{user} eq 'app' } @pools;
is_deeply(\%mode, { sessdb => 'session', txdb => 'transaction', stmtdb => 'statement' },
	'SHOW POOLS reports each pool\'s mode');

$direct->disconnect;
done_testing();
