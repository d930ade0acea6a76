# 016_failures.pl -- server backends terminated, PostgreSQL restarted or down, while pgslab runs.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c016');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', 'CREATE TABLE t016 (id int); GRANT ALL ON t016 TO app;');
my $cport = $node->port;
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p016',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		txdb     => "host=127.0.0.1 port=$cport dbname=postgres pool_mode=transaction",
	},
	settings => {
		default_pool_size  => 3,
		server_login_retry => 1,
		query_wait_timeout => 5,
	},
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my %app = (user => 'app', password => 'app_pw');

sub direct { return $node->connect_dbi('postgres') }

sub terminate
{
	my ($pid) = @_;
	my $d = direct();
	my $ok = $d->selectrow_array('SELECT pg_terminate_backend(?)', undef, $pid);
	# Wait until the backend is really gone.
	for (1 .. 100) {
		last unless $d->selectrow_array('SELECT count(*) FROM pg_stat_activity WHERE pid = ?',
			undef, $pid);
		sleep(0.02);
	}
	$d->disconnect;
	return $ok;
}

# A query on a handle whose backend was killed: returns (ok, errstr).
sub try_query
{
	my ($dbh, $sql) = @_;
	my $v = eval { $dbh->selectrow_array($sql) };
	return (defined $v ? $v : undef, $@ ? ($dbh->errstr // "$@") : '');
}

# --- pg_terminate_backend in session mode ------------------------------------------------------------
my $a = $proxy->connect_dbi('postgres', %app);
my $b = $proxy->connect_dbi('postgres', %app);
my $apid = $a->selectrow_array('SELECT pg_backend_pid()');
my $bpid = $b->selectrow_array('SELECT pg_backend_pid()');
isnt($apid, $bpid, 'session: two clients, two backends');
ok(terminate($apid), 'session: terminated client A\'s backend from a direct superuser connection');
my ($v, $err) = try_query($a, 'SELECT 1');
ok(!defined $v, 'session: client A gets an error on its next query');
like($err, qr/terminat|server closed|connection/i, '... a connection error') or diag($err);
is($b->selectrow_array('SELECT 2'), 2, 'session: client B keeps working');
my $c = $proxy->connect_dbi('postgres', %app);
is($c->selectrow_array('SELECT 3'), 3, 'session: a new client works');
isnt($c->selectrow_array('SELECT pg_backend_pid()'), $apid, '... on a live backend');
$_->disconnect for grep { $_->{Active} } $a, $b, $c;

# --- pg_terminate_backend in transaction mode ------------------------------------------------------------
$a = $proxy->connect_dbi('txdb', %app);
$b = $proxy->connect_dbi('txdb', %app);
$a->begin_work;
$a->do('INSERT INTO t016 VALUES (1)');
$apid = $a->selectrow_array('SELECT pg_backend_pid()');
ok(terminate($apid), 'transaction: terminated the backend of a client inside a transaction');
($v, $err) = try_query($a, 'SELECT 1');
ok(!defined $v, 'transaction: that client gets an error');
like($err, qr/terminat|server closed|connection/i, '... a connection error') or diag($err);
is($b->selectrow_array('SELECT 4'), 4, 'transaction: another client keeps working');
is(direct()->selectrow_array('SELECT count(*) FROM t016'), 0, 'transaction: the killed transaction left no row');
$c = $proxy->connect_dbi('txdb', %app);
is($c->selectrow_array('SELECT 5'), 5, 'transaction: a new client works');
eval { $a->disconnect };

# Kill every idle pooled backend behind idle transaction-mode clients:
# pgslab notices the closed servers and the clients' next queries succeed.
my @idle = map { $proxy->connect_dbi('txdb', %app) } 1 .. 3;
$_->do('SELECT pg_sleep(0.2)', { pg_async => DBD::Pg::PG_ASYNC() }) for @idle;
$_->pg_result for @idle;		# three backends now exist, all idle
my $d = direct();
my $pids = $d->selectcol_arrayref(q{SELECT pid FROM pg_stat_activity
	WHERE usename = 'app' AND state = 'idle' AND backend_type = 'client backend'});
$d->disconnect;
ok(@$pids >= 1, 'transaction: ' . scalar(@$pids) . ' idle pooled backends');
terminate($_) for @$pids;
sleep(0.3);
my $good = grep { my ($x) = try_query($_, 'SELECT 6'); defined $x && $x == 6 } @idle, $b, $c;
is($good, 5, 'transaction: all five idle clients work after their pooled backends were killed');
$_->disconnect for @idle, $b, $c;

# --- PostgreSQL restart --------------------------------------------------------------------------------------
my $sess = $proxy->connect_dbi('postgres', %app);
my $tx = $proxy->connect_dbi('txdb', %app);
is($sess->selectrow_array('SELECT 1') + $tx->selectrow_array('SELECT 1'), 2, 'clients connected before restart');
$node->restart;
ok(1, 'PostgreSQL restarted (fast) while pgslab runs');
($v, $err) = try_query($sess, 'SELECT 1');
ok(!defined $v, 'restart: the session client whose backend died gets an error')
    or diag('it got a result: its backend did not die?');
($v, $err) = try_query($tx, 'SELECT 7');
is($v, 7,
	'restart: an idle transaction-mode client keeps working (it held no backend)') or diag($err);
my $new = $proxy->connect_dbi('postgres', %app);
is($new->selectrow_array('SELECT 8'), 8, 'restart: a new session client works');
my $newtx = $proxy->connect_dbi('txdb', %app);
is($newtx->selectrow_array('SELECT 9'), 9, 'restart: a new transaction client works');
$_->disconnect for grep { $_->{Active} } $sess, $tx, $new, $newtx;
my ($rc, $out, $perr) = $proxy->pgbench('-n', '-c', '4', '-j', '2', '-t', '50',
	'-f', '-', 'txdb', { stdin => "SELECT 1;\n" });
is($rc, 0, 'restart: pgbench through pgslab afterwards') or diag($perr);
like($out, qr/number of failed transactions: 0 /, '... zero failed transactions');

# --- PostgreSQL down, then back ------------------------------------------------------------------------------
$node->stop;
my $t0 = time;
my $down = eval { my $h = $proxy->connect_dbi('txdb', %app); $h->selectrow_array('SELECT 1') };
my $dt = time - $t0;
ok(!defined $down, 'server down: a client gets an error');
ok($dt < 7, sprintf('... within the configured timeouts (%.1fs), no hang', $dt));
ok($proxy->is_running, 'pgslab keeps running while the server is down');
$node->start;
my $back;
$t0 = time;
while (time - $t0 < 10) {
	$back = eval { my $h = $proxy->connect_dbi('txdb', %app); my $x = $h->selectrow_array('SELECT 10'); $h->disconnect; $x };
	last if defined $back;
	sleep(0.2);
}
is($back, 10, sprintf('server back: new clients work again (after %.1fs)', time - $t0));
my $again = $proxy->connect_dbi('postgres', %app);
is($again->selectrow_array('SELECT 11'), 11, 'server back: session clients work too');
$again->disconnect;

is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
