# 015_cancel.pl -- client CancelRequests through pgslab: right key cancels, wrong or stale keys do nothing.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use DBD::Pg qw(:async);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

# --- setup -----------------------------------------------------------------------------------------

my $node = PgSlab::Test::Cluster->new(name => 'c015');
$node->start;
$node->create_user('app', 'app_pw');
my $cport = $node->port;
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p015',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		txdb     => "host=127.0.0.1 port=$cport dbname=postgres pool_mode=transaction",
		tx1      => "host=127.0.0.1 port=$cport dbname=postgres pool_mode=transaction pool_size=1",
	},
	settings => { auth_type => 'plain', default_pool_size => 4 },
	userlist => [ [ 'app', 'app_pw' ] ]);
$proxy->start;
my ($host, $port) = ($proxy->host, $proxy->port);
my %app = (user => 'app', password => 'app_pw');

# --- DBD::Pg pg_cancel: client-side CancelRequest through pgslab -------------------------------------
for my $db ('postgres', 'txdb') {
	my $mode = $db eq 'txdb' ? 'transaction' : 'session';
	my $dbh = $proxy->connect_dbi($db, %app);
	ok($dbh->{pg_pid}, "[$mode] pgslab sent BackendKeyData (pid $dbh->{pg_pid})");
	$dbh->do('SELECT pg_sleep(10)', { pg_async => PG_ASYNC });
	sleep(0.3);
	my $t0 = time;
	my $cancelled = $dbh->pg_cancel;
	my $dt = time - $t0;
	ok($cancelled, "[$mode] pg_cancel of SELECT pg_sleep(10)");
	is($dbh->state, '57014', "[$mode] ... query ended with SQLSTATE 57014");
	ok($dt < 2, sprintf("[$mode] ... within 2 s (%.2fs)", $dt));
	is($dbh->selectrow_array('SELECT 1'), 1, "[$mode] connection usable after the cancel");

	# Cancel inside a transaction block: the transaction is aborted.
	$dbh->begin_work;
	$dbh->do('SELECT pg_sleep(10)', { pg_async => PG_ASYNC });
	sleep(0.3);
	$t0 = time;
	$dbh->pg_cancel;
	$dt = time - $t0;
	is($dbh->state, '57014', "[$mode] cancel inside BEGIN: 57014");
	ok($dt < 2, sprintf("[$mode] ... within 2 s (%.2fs)", $dt));
	ok(!eval { $dbh->do('SELECT 1'); 1 }, "[$mode] ... the transaction is aborted");
	is($dbh->state, '25P02', "[$mode] ... 25P02");
	$dbh->rollback;
	is($dbh->selectrow_array('SELECT 2'), 2, "[$mode] ROLLBACK recovers");

	# Only the right client's query is cancelled.
	my $other = $proxy->connect_dbi($db, %app);
	$other->do('SELECT pg_sleep(1.2)', { pg_async => PG_ASYNC });
	$dbh->do('SELECT pg_sleep(10)', { pg_async => PG_ASYNC });
	sleep(0.3);
	$dbh->pg_cancel;
	is($dbh->state, '57014', "[$mode] with two clients busy, the cancelled one gets 57014");
	ok(eval { $other->pg_result; 1 }, "[$mode] ... the other client's query completes normally")
	    or diag($other->errstr);
	$other->disconnect;
	$dbh->disconnect;
}

# --- raw CancelRequests: right key, wrong key, stale key -------------------------------------------------
my ($s, $pid, $key) = plain_login($host, $port, 'txdb', 'app', 'app_pw');
ok(defined $pid && defined $key, "raw client got BackendKeyData ($pid)");

raw_query($s, 'SELECT pg_sleep(10)');
sleep(0.3);
my $t0 = time;
send_cancel($host, $port, $pid, $key);
my $r = read_until_ready($s, 5);
my $dt = time - $t0;
is($r->{error} && $r->{error}{C}, '57014', 'raw CancelRequest with the right key: 57014');
like($r->{error} && $r->{error}{M}, qr/canceling statement due to user request/, '... server message');
ok($dt < 2, sprintf('... within 2 s (%.2fs)', $dt));
like($r->{types}, qr/Z$/, '... followed by ReadyForQuery');

raw_query($s, 'SELECT pg_sleep(1.5), 42');
sleep(0.3);
$t0 = time;
my $ans = send_cancel($host, $port, $pid, $key ^ 0x5a5a5a5a);
is($ans, 'EOF', 'cancel connection with a wrong key is closed without an answer');
$r = read_until_ready($s, 5);
$dt = time - $t0;
ok(!$r->{error}, 'CancelRequest with the right pid but a wrong key does not cancel')
    or diag("error: $r->{error}{C} $r->{error}{M}");
is_deeply($r->{rows}, [ [ '', 42 ] ], '... the query returns its row');
ok($dt > 1.0, sprintf('... after running its full time (%.2fs)', $dt));

raw_query($s, 'SELECT pg_sleep(1), 43');
sleep(0.2);
send_cancel($host, $port, $pid ^ 0x1234, $key);
send_cancel($host, $port, 0, 0);
$r = read_until_ready($s, 5);
ok(!$r->{error} && @{ $r->{rows} } && $r->{rows}[0][1] == 43,
	'CancelRequests with unknown pids do nothing');

# An idle transaction-mode client's key must not cancel whoever uses the
# backend now (pool_size 1: the backend it used last is shared).
my ($s1, $pid1, $key1) = plain_login($host, $port, 'tx1', 'app', 'app_pw');
raw_query($s1, 'SELECT pg_backend_pid()');
my $r1 = read_until_ready($s1, 5);
my $busy = $proxy->connect_dbi('tx1', %app);
is($busy->selectrow_array('SELECT pg_backend_pid()'), $r1->{rows}[0][0],
	'tx1: both clients use the same backend');
$busy->do('SELECT pg_sleep(1.2)', { pg_async => PG_ASYNC });
sleep(0.3);
send_cancel($host, $port, $pid1, $key1);
ok(eval { $busy->pg_result; 1 }, 'cancel from an idle transaction-mode client does not hit the backend\'s current user')
    or diag($busy->errstr);

# A disconnected client's key is dead.
raw_send($s1, 'X' . pack('N', 4));
close $s1;
$busy->do('SELECT pg_sleep(1.2)', { pg_async => PG_ASYNC });
sleep(0.3);
send_cancel($host, $port, $pid1, $key1);
ok(eval { $busy->pg_result; 1 }, 'cancel with the key of a disconnected client does nothing')
    or diag($busy->errstr);
$busy->disconnect;

# Keys are distinct per client.
my %keys;
for (1 .. 10) {
	my ($x, $p, $k) = plain_login($host, $port, 'txdb', 'app', 'app_pw');
	$keys{"$p/$k"}++;
	close $x;
}
is(scalar keys %keys, 10, '10 clients got 10 distinct (pid, key) pairs');

raw_send($s, 'X' . pack('N', 4));
close $s;
ok($proxy->is_running, 'pgslab still running');
is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
