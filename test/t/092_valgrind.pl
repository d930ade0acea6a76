# 092_valgrind.pl -- pgslab under valgrind memcheck through a short, mixed workload:
# SCRAM, md5 and plain logins (good, wrong and empty passwords), pgbench in transaction
# mode, hostile raw clients (truncated startup, garbage, Flush-without-Sync disconnect,
# pipelining across ReadyForQuery, SCRAM abandoned mid-exchange), console commands
# and a RELOAD; then a clean shutdown.  Asserts: no memcheck error, no definitely or
# indirectly lost block, and valgrind's exit code is not its error code.

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $vg = '/usr/bin/valgrind';
ok(-x $vg, 'valgrind is installed (make deps)') or BAIL_OUT('valgrind missing');

my $node = PgSlab::Test::Cluster->new(name => 'c092');
$node->start;
$node->create_user('app', 'app_pw', method => 'scram-sha-256');
$node->create_user('u_plain', 'plain_pw', method => 'scram-sha-256');
my ($rc, $out, $err) = $node->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i') or diag($err);

my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p092',
	wrapper => [ $vg, '--error-exitcode=99', '--leak-check=full',
		'--show-leak-kinds=definite,indirect', '--errors-for-leak-kinds=definite,indirect',
		'--num-callers=30', '--log-file=%p.vg.log' ],
	userlist => [ @{ userlist_from_cluster($node, $node->superuser, 'app') }, [ 'u_plain', 'plain_pw' ] ],
	settings => { pool_mode => 'transaction', default_pool_size => 3, auth_type => 'md5' });
$proxy->start(timeout => 90);
my ($host, $port) = ($proxy->host, $proxy->port);

# logins: SCRAM secret (md5 auth_type upgrades to SCRAM), md5 with a plain secret, wrong, empty
is($proxy->safe_psql('postgres', 'SELECT 1', user => 'app', password => 'app_pw', timeout => 60), '1',
	'SCRAM login and a query');
is($proxy->safe_psql('postgres', 'SELECT 2', user => 'u_plain', password => 'plain_pw', timeout => 60), '2',
	'md5 login (a plain secret) and a query');
($rc) = $proxy->psql('postgres', 'SELECT 3', user => 'app', password => 'wrong', timeout => 60);
isnt($rc, 0, 'wrong password refused');
($rc) = $proxy->psql('postgres', 'SELECT 3', user => 'app', password => '', extra_args => ['-w'],
	timeout => 60);
isnt($rc, 0, 'empty password refused');

($rc, $out, $err) = $proxy->pgbench('-n', '-c', '4', '-j', '2', '-t', '30');
is($rc, 0, 'pgbench (TPC-B-like, 4 clients x 30 transactions) through pgslab') or diag($err);

# hostile clients
{
	my $s = raw_connect($host, $port);
	raw_send($s, pack('N', 200) . pack('N', 196608) . "user\0ap");   # truncated startup
	close $s;
	$s = raw_connect($host, $port);
	raw_send($s, "GET / HTTP/1.1\r\n\r\n");
	my $o = read_outcome($s, 10);
	ok(!$o->{ready}, 'garbage instead of a startup packet: no ReadyForQuery');
	close $s;
	$s = raw_connect($host, $port);
	$o = scram_login($s, 'app', 'app_pw');
	ok($o->{ready}, 'raw SCRAM login');
	raw_send($s, ext_query('SELECT 1') . msg_flush());   # Flush, no Sync, then leave
	sleep(0.5);
	close $s;
	$s = raw_connect($host, $port);
	scram_login($s, 'app', 'app_pw');
	raw_send($s, frontend_message('Q', "SELECT 1\0") . ext_query('SELECT 2') . msg_sync());
	my $r = read_until_n_ready($s, 2, 30);
	is($r->{ready}, 2, 'Query + Parse/Bind/Execute/Sync in one write: both answered');
	close $s;
	$s = raw_connect($host, $port);
	ok(scram_abandon($s, 'app', 'app_pw', 'final_sent'), 'SCRAM final message sent, then the connection reset');
	raw_reset($s);
}

# console and reload
ok(scalar($proxy->admin('SHOW POOLS')) >= 1, 'SHOW POOLS');
$proxy->admin($_) for ('SHOW SLABS', 'SHOW CLIENTS', 'SHOW SERVERS', 'SHOW STATS', 'SHOW CONFIG');
$proxy->reload;
sleep(1);
is($proxy->safe_psql('postgres', 'SELECT 4', user => 'app', password => 'app_pw', timeout => 60), '4',
	'serves after RELOAD');

my $pid = $proxy->pid;
my $st = $proxy->stop(timeout => 60);
my $vglog = PgSlab::Test::Cluster::_slurp($proxy->basedir . "/$pid.vg.log");
ok(defined $st && ($st >> 8) != 99, 'valgrind did not exit with its error code (wait status '
	. ($st // 'none') . ')');
like($vglog, qr/ERROR SUMMARY: 0 errors/, 'memcheck: 0 errors')
	or diag(join("\n", grep { /==\d+== (?:Invalid|Conditional|Use of|Mismatched|Syscall|\s+at|\s+by)/ }
		(split /\n/, $vglog)[0 .. 200]));
unlike($vglog, qr/definitely lost: [1-9]|indirectly lost: [1-9]/, 'memcheck: nothing definitely or indirectly lost')
	or diag(join("\n", grep { /lost|at 0x|by 0x/ } split /\n/, $vglog));
done_testing();
