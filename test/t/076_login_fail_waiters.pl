# 076_login_fail_waiters.pl -- a server login that PostgreSQL refuses with an
# ErrorResponse fails the clients waiting for that pool with PostgreSQL's own
# SQLSTATE and message.  Regression (found by 075_ledger.pl under ASan during a
# PostgreSQL restart, "the database system is shutting down"): the message and
# SQLSTATE pointed into the server's input buffer, which server_close() had
# already freed when the waiting clients were sent the error
# (use-after-poison in login_failed -> pool_fail_waiting -> client_close).

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;
use PgSlab::Test::Differential;

my $node = PgSlab::Test::Cluster->new(name => 'c076');
$node->start;
$node->create_user('app', 'app_pw');
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p076',
	databases => {
		postgres => 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres',
		nodb     => 'host=' . $node->host . ' port=' . $node->port . ' dbname=no_such_db_076',
	},
	settings  => { pool_mode => 'transaction', server_login_retry => 0 },
	userlist  => userlist_from_cluster($node, 'app'));
$proxy->start;

# Several clients at once, so some wait while the first server login fails.
for my $round (1 .. 3) {
	my @s;
	for my $i (1 .. 4) {
		my $s = raw_connect($proxy->host, $proxy->port);
		push @s, [ $s, scram_login($s, 'app', 'app_pw', database => 'nodb') ];
	}
	for my $i (0 .. $#s) {
		my $o = $s[$i][1];
		is($o->{error} && $o->{error}{C}, '3D000', "round $round client $i: PostgreSQL's SQLSTATE 3D000")
		    or diag(describe_outcome($o));
		like($o->{error} && $o->{error}{M}, qr/^database "no_such_db_076" does not exist$/,
			"round $round client $i: PostgreSQL's message, intact");
		close $s[$i][0];
	}
}

ok($proxy->is_running, 'pgslab is still running');
is(PgSlab::Test::Differential->sanitizer_report($proxy), undef, 'no sanitizer report in the log');
is($proxy->safe_psql('postgres', 'SELECT 1', user => 'app', password => 'app_pw'), '1',
	'another database still works');

# PgBouncer's fast fail: within server_login_retry of a refused login, a client of a
# pool that never had a server gets the cached refusal at once instead of waiting.
$proxy->set_databases(nodb2 => 'host=' . $node->host . ' port=' . $node->port . ' dbname=no_such_db_076b');
$proxy->set(server_login_retry => 60);
$proxy->reload;
ok($proxy->wait_for_log(qr/configuration reloaded/), 'a second missing database, server_login_retry 60');
my (undef, undef, $e1) = $proxy->psql('nodb2', 'SELECT 1', user => 'app', password => 'app_pw');
like($e1, qr/database "no_such_db_076b" does not exist/, 'the first client gets PostgreSQL\'s refusal');
my (undef, undef, $e2) = $proxy->psql('nodb2', 'SELECT 1', user => 'app', password => 'app_pw',
	params => { connect_timeout => 20 });
like($e2, qr/server login has been failing, try again later \(server_login_retry\): database "no_such_db_076b" does not exist/,
	'the next one gets the cached refusal at once, not a wait for a server');

$proxy->stop;
$node->stop;
done_testing();
