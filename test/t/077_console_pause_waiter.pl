# 077_console_pause_waiter.pl -- a console PAUSE that has to wait (a transaction
# holds a server) is held, not lost.  Regressions found by the ledger soak
# (make soak): (1) a console client that disconnected while its PAUSE waited was
# never noticed (its reads were paused), so the client, its buffer, its fd and
# the waiter stayed for as long as the pool kept a server busy; (2) a PAUSE
# overtaken by RESUME kept waiting for a pool that was no longer paused and, under
# steady load, never answered.  Now the departure is seen at once, and the
# overtaken PAUSE gets an ERROR (57014) and ReadyForQuery.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c077');
$node->start;
$node->create_user('app', 'app_pw');
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p077',
	settings => { pool_mode => 'transaction', default_pool_size => 2 },
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;

sub console
{
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = scram_login($s, $node->superuser, $node->superuser_password, database => 'pgslab');
	die 'console login failed: ' . describe_outcome($o) unless $o->{ready};
	return $s;
}

sub console_clients
{
	return scalar grep { $_->{database} eq 'pgslab' } $proxy->admin_hash('SHOW CLIENTS');
}

sub waiters
{
	my ($row) = grep { $_->{name} eq 'console_waiter' } $proxy->admin_hash('SHOW SLABS');
	return $row ? $row->{active_objs} : 0;
}

# A transaction keeps one server of the pool busy.
my $app = raw_connect($proxy->host, $proxy->port);
ok(scram_login($app, 'app', 'app_pw')->{ready}, 'application client logged in');
raw_query($app, 'BEGIN; SELECT 1');
like(read_until_ready($app, 5)->{types}, qr/Z$/, 'transaction open');

# (1) PAUSE waits; its client leaves.
for my $round (1 .. 3) {
	my $c = console();
	raw_query($c, 'PAUSE postgres');
	my ($t) = read_msg($c, 0.5);
	is($t, 'TIMEOUT', "round $round: PAUSE waits for the open transaction");
	$round % 2 ? close($c) : raw_reset($c);
	my $gone = PgSlab::Test::Cluster::_poll_until(10, sub { console_clients() == 1 && waiters() == 0 });
	ok($gone, "round $round: the console client that left while its PAUSE waited is gone, with its waiter")
	    or diag('console clients ' . console_clients() . ', waiters ' . waiters());
	$proxy->admin('RESUME postgres');
}

# (2) PAUSE waits; RESUME from another console overtakes it.
my $c = console();
raw_query($c, 'PAUSE postgres');
my ($t) = read_msg($c, 0.5);
is($t, 'TIMEOUT', 'PAUSE waits for the open transaction');
$proxy->admin('RESUME postgres');
my $r = read_until_ready($c, 10);
is($r->{types}, 'E Z', 'the overtaken PAUSE is answered: ErrorResponse, ReadyForQuery');
is($r->{error} && $r->{error}{C}, '57014', '... SQLSTATE 57014');
like($r->{error} && $r->{error}{M}, qr/PAUSE canceled: RESUME was issued/, '... and says why');
raw_query($c, 'SHOW VERSION');
like(read_until_ready($c, 5)->{types}, qr/^T D C Z$/, 'the console session goes on');
close $c;

# The transaction was never disturbed.
raw_query($app, 'SELECT 2; COMMIT');
my $a = read_until_ready($app, 5);
is($a->{types}, 'T D C C Z', 'the open transaction commits');
close $app;

# A PAUSE that completes still answers PAUSE.
is_deeply([ $proxy->admin("PAUSE postgres;\nRESUME postgres") ], [], 'PAUSE on an idle pool completes');
ok($proxy->is_running, 'pgslab is still running');

$proxy->stop;
$node->stop;
done_testing();
