# 010_basic.pl -- query protocol basics through pgslab: simple/extended, errors, notices, sockets, console.

use strict;
use warnings;

use Test::More;
use DBD::Pg qw(:pg_types);
use PgSlab::Test::Cluster qw(port_is_listening);
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c010');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres',
	'CREATE TABLE t010 (id int PRIMARY KEY, v text); GRANT ALL ON t010 TO app;');
my $cport = $node->port;

my $have_v6 = PgSlab::Test::Cluster::_have_ipv6();
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p010',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		txdb     => "host=127.0.0.1 port=$cport dbname=postgres pool_mode=transaction",
	},
	settings => {
		listen_addr => $have_v6 ? '127.0.0.1,::1' : '127.0.0.1',
		default_pool_size => 4,
	},
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;

my %app = (user => 'app', password => 'app_pw');

# Runs the same protocol checks against one pooled database.
sub protocol_checks
{
	my ($db, $mode) = @_;
	my $tag = "[$mode]";

	# --- simple query protocol (psql, DBD::Pg without server-side prepare) ---
	is($proxy->safe_psql($db, 'SELECT current_user, current_database()', %app),
		'app|postgres', "$tag psql: simple query");
	my ($rc, $out, $err) = $proxy->psql($db, undef, %app,
		extra_args => [ '-c', 'SELECT 1; SELECT 2; SELECT 3' ]);
	is($rc, 0, "$tag multi-statement Query message succeeds") or diag($err);
	is($out, "1\n2\n3", "$tag multi-statement Query returns every result");

	my $dbh = $proxy->connect_dbi($db, %app, attrs => { pg_server_prepare => 0 });
	is($dbh->selectrow_array('SELECT ?::int + ?::int', undef, 40, 2), 42,
		"$tag DBD::Pg client-side bind");
	$dbh->do('DELETE FROM t010');
	$dbh->do("INSERT INTO t010 VALUES (1, 'a'); INSERT INTO t010 VALUES (2, 'b')");
	is($dbh->selectrow_array('SELECT count(*) FROM t010'), 2,
		"$tag two INSERTs in one Query message");
	ok(!eval {
		$dbh->do("INSERT INTO t010 VALUES (3, 'c'); SELECT 1/0; INSERT INTO t010 VALUES (4, 'd')");
		1 }, "$tag multi-statement Query with an error in the middle fails");
	is($dbh->state, '22012', "$tag ... with SQLSTATE 22012");
	is($dbh->selectrow_array('SELECT count(*) FROM t010'), 2,
		"$tag ... and the implicit transaction rolled back (no row 3)");
	$dbh->disconnect;

	# --- extended query protocol (server-side prepare) ---
	$dbh = $proxy->connect_dbi($db, %app, attrs => { pg_server_prepare => 1 });
	is($dbh->selectrow_array('SELECT ?::int * 2', undef, 21), 42,
		"$tag extended protocol: Parse/Bind/Execute");
	my $row = $dbh->selectrow_arrayref('SELECT $1::text || $2::text, $3::bytea',
		undef, 'ab', 'cd', undef);
	is_deeply($row, [ 'abcd', undef ], "$tag extended protocol: text and NULL parameters");
	my $bin = join('', map { chr } 0 .. 255);
	my $sth = $dbh->prepare('SELECT $1::bytea, length($1::bytea)');
	$sth->bind_param(1, $bin, { pg_type => PG_BYTEA });
	$sth->execute;
	my ($back, $len) = $sth->fetchrow_array;
	$sth->finish;
	ok($back eq $bin && $len == 256, "$tag extended protocol: bytea parameter round trip");
	ok(!eval { $dbh->selectrow_array('SELECT 1 / $1::int', undef, 0); 1 },
		"$tag extended protocol: error at Execute");
	is($dbh->state, '22012', "$tag ... SQLSTATE 22012");
	ok(!eval { $dbh->selectrow_array('SELECT $1::int', undef, 'notanumber'); 1 },
		"$tag extended protocol: error at Bind");
	is($dbh->state, '22P02', "$tag ... SQLSTATE 22P02");
	ok(!eval { $dbh->selectrow_array('SELEC 1'); 1 }, "$tag extended protocol: error at Parse");
	is($dbh->state, '42601', "$tag ... SQLSTATE 42601");
	is($dbh->selectrow_array('SELECT $1::int + 1', undef, 1), 2,
		"$tag connection usable after extended-protocol errors");
	$dbh->disconnect;

	# --- errors outside and inside transactions ---
	$dbh = $proxy->connect_dbi($db, %app);
	ok(!eval { $dbh->do('SELECT * FROM no_such_table'); 1 }, "$tag undefined table fails");
	is($dbh->state, '42P01', "$tag ... SQLSTATE 42P01");
	like($dbh->errstr, qr/relation "no_such_table" does not exist/, "$tag ... with the server's message");
	is($dbh->selectrow_array('SELECT 7'), 7, "$tag next statement works (autocommit)");

	$dbh->begin_work;
	$dbh->do("INSERT INTO t010 VALUES (10, 'in tx')");
	ok(!eval { $dbh->do('SELECT 1/0'); 1 }, "$tag division by zero inside a transaction");
	is($dbh->state, '22012', "$tag ... SQLSTATE 22012");
	ok(!eval { $dbh->do('SELECT 1'); 1 }, "$tag statement in the aborted transaction fails");
	is($dbh->state, '25P02', "$tag ... SQLSTATE 25P02 (in failed SQL transaction)");
	$dbh->rollback;
	is($dbh->selectrow_array('SELECT 8'), 8, "$tag ROLLBACK recovers the connection");
	is($dbh->selectrow_array('SELECT count(*) FROM t010 WHERE id = 10'), 0,
		"$tag ... and the row inserted before the error is gone");

	$dbh->begin_work;
	$dbh->do("INSERT INTO t010 VALUES (11, 'committed')");
	$dbh->commit;
	is($node->safe_psql('postgres', 'SELECT v FROM t010 WHERE id = 11'), 'committed',
		"$tag committed transaction is visible directly on the server");

	# A COMMIT of an aborted transaction reports ROLLBACK and recovers too.
	my ($r1, $o1, $e1) = $proxy->psql($db,
		"BEGIN;\nSELECT 1/0;\nSELECT 2;\nCOMMIT;\nSELECT 'after';", %app,
		on_error_stop => 0, extra_args => [ '-v', 'VERBOSITY=verbose' ]);
	like($e1, qr/ERROR:\s+22012: division by zero/, "$tag psql sees 22012");
	like($e1, qr/ERROR:\s+25P02: current transaction is aborted/, "$tag psql sees 25P02");
	is($o1, 'after', "$tag COMMIT of an aborted transaction ends it, the session goes on")
	    or diag("out: $o1\nerr: $e1");
	is(scalar(() = $e1 =~ /ERROR/g), 2, "$tag ... exactly two errors reported")
	    or diag($e1);

	# --- notices ---
	my @warnings;
	{
		local $SIG{__WARN__} = sub { push @warnings, $_[0] };
		$dbh->do(q{DO $$BEGIN RAISE NOTICE 'hello from plpgsql %', 42; END$$});
	}
	ok((grep { /NOTICE:\s+hello from plpgsql 42/ } @warnings),
		"$tag RAISE NOTICE reaches DBD::Pg") or diag(explain \@warnings);
	is($dbh->selectrow_array('SELECT 9'), 9, "$tag connection fine after the notice");
	$dbh->disconnect;
	($rc, $out, $err) = $proxy->psql($db,
		q{DO $$BEGIN RAISE NOTICE 'psql notice'; RAISE WARNING 'psql warning'; END$$;}, %app);
	like($err, qr/NOTICE:\s+psql notice/, "$tag RAISE NOTICE reaches psql");
	like($err, qr/WARNING:\s+psql warning/, "$tag RAISE WARNING reaches psql");
}

protocol_checks('postgres', 'session');
protocol_checks('txdb', 'transaction');

# --- Unix socket ---------------------------------------------------------------
my $sock = $proxy->socket_dir . '/.s.PGSQL.' . $proxy->port;
ok(-S $sock, 'pgslab created its Unix socket');
is($proxy->safe_psql('postgres', 'SELECT current_user', %app, host => $proxy->socket_dir),
	'app', 'psql over the Unix socket');
is($proxy->safe_psql('txdb', 'SELECT 1 + 1', %app, host => $proxy->socket_dir),
	'2', 'psql over the Unix socket, transaction pool');

# --- IPv6 ----------------------------------------------------------------------
SKIP: {
	skip 'no IPv6 loopback on this host', 3 unless $have_v6;
	ok(port_is_listening('::1', $proxy->port), 'listening on ::1');
	is($proxy->safe_psql('postgres', 'SELECT current_user', %app, host => '::1'),
		'app', 'psql over IPv6 ::1');
	my $dbh = $proxy->connect_dbi('txdb', %app, host => '::1');
	is($dbh->selectrow_array('SELECT 5'), 5, 'DBD::Pg over IPv6 ::1, transaction pool');
	$dbh->disconnect;
}

# --- admin console ---------------------------------------------------------------
my ($ver) = $proxy->admin('SHOW VERSION');
like($ver->[0], qr/pgslab/i, 'SHOW VERSION');
my @pools = $proxy->admin_hash('SHOW POOLS');
my ($tx) = grep { $_->{database} eq 'txdb' && $_->{user} eq 'app' } @pools;
ok($tx, 'SHOW POOLS lists the txdb/app pool');
is($tx && $tx->{pool_mode}, 'transaction', '... in transaction mode');
my ($sp) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' } @pools;
is($sp && $sp->{pool_mode}, 'session', 'postgres/app pool is in session mode');
ok($sp && $sp->{sv_idle} + $sp->{sv_used} >= 1, 'session pool kept its server connection idle');
my @mem = $proxy->admin_hash('SHOW MEM');
ok((grep { $_->{name} eq 'sysalloc_calls' && $_->{used} > 0 } @mem), 'SHOW MEM has sysalloc_calls');
ok(scalar(my @slabs = $proxy->admin('SHOW SLABS')) > 0, 'SHOW SLABS returns rows');
my @stats = $proxy->admin_hash('SHOW STATS');
my ($st) = grep { $_->{database} eq 'txdb' } @stats;
ok($st && ($st->{total_xact_count} // $st->{total_query_count} // 0) > 0,
	'SHOW STATS counts transactions on txdb') or diag(explain \@stats);
is_deeply([ $proxy->admin('RELOAD') ], [], 'RELOAD on the console');
is(scalar(my @v = $proxy->admin('SHOW VERSION')), 1, 'console still answers after RELOAD');
my ($rc, $out, $err) = $proxy->psql('pgslab', 'SHOW NO_SUCH_THING',
	user => $proxy->admin_user, password => $node->superuser_password);
isnt($rc, 0, 'unknown console command fails');
like($err, qr/ERROR/, '... with an ERROR');
($rc, $out, $err) = $proxy->psql('pgslab', 'SHOW POOLS', %app);
isnt($rc, 0, 'a user not in admin_users cannot use the console');

# --- pgbench, simple and extended protocol ---------------------------------------------
($rc, $out, $err) = $proxy->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i through pgslab (COPY)') or diag($err);
for my $m ([ 'postgres', 'simple' ], [ 'postgres', 'extended' ], [ 'txdb', 'simple' ],
    [ 'txdb', 'extended' ]) {
	my ($db, $proto) = @$m;
	($rc, $out, $err) = $proxy->pgbench('-n', '-M', $proto, '-c', '4', '-j', '2',
		'-t', '100', $db);
	is($rc, 0, "pgbench TPC-B -M $proto on $db exits 0") or diag($err);
	like($out, qr{processed: 400/400}, "... all 400 transactions processed");
	like($out, qr/number of failed transactions: 0 /, '... zero failed transactions');
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM pgbench_history'), 1600,
	'pgbench_history has exactly 1600 rows on the server');

is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
