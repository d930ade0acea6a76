# 001_cluster.pl -- the PostgreSQL test harness itself: initdb, auth, psql, DBI, restart, teardown.

use strict;
use warnings;

use Test::More;
use Digest::MD5 qw(md5_hex);
use PgSlab::Test::Cluster qw(get_free_port port_is_listening);

my $libdir = $INC{'PgSlab/Test/Cluster.pm'} =~ s{/PgSlab/Test/Cluster\.pm$}{}r;
delete $ENV{PGSLAB_KEEP_TMP};

# --- free ports -------------------------------------------------------------
my %ports = map { get_free_port() => 1 } 1 .. 5;
is(scalar keys %ports, 5, 'get_free_port hands out distinct ports');
ok(!(grep { port_is_listening('127.0.0.1', $_) } keys %ports),
	'nothing listens on the ports handed out');

# --- initdb -------------------------------------------------------------------
my $node = PgSlab::Test::Cluster->new(name => 'c001');
ok(-f $node->data_dir . '/PG_VERSION', 'initdb created the data directory');
if ($> == 0) {
	my $uid = getpwnam('pgslab_pg');
	ok(defined $uid, 'running as root: OS user pgslab_pg exists');
	is((stat $node->data_dir)[4], $uid, 'data directory belongs to pgslab_pg');
}
ok(!port_is_listening($node->host, $node->port), 'not listening before start');

# --- start, psql ----------------------------------------------------------------
$node->start;
ok(port_is_listening($node->host, $node->port), 'listening on 127.0.0.1 after start');
ok(-S $node->socket_dir . '/.s.PGSQL.' . $node->port, 'Unix socket in socket_dir');
like($node->safe_psql('postgres', 'SELECT version()'), qr/^PostgreSQL 15\./,
	'psql through the harness reaches PostgreSQL 15');
is($node->safe_psql('postgres', 'SELECT current_user || \',\' || host(inet_server_addr())'),
	'pgsuper,127.0.0.1', 'harness connects over TCP as the superuser');
is($node->safe_psql('postgres',
	"SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND '127.0.0.1/32' = address || '/32' LIMIT 1"),
	'scram-sha-256', 'TCP connections use scram-sha-256 by default');
is($node->safe_psql('postgres', "SELECT 1;\nSELECT 2"), "1\n2", 'several statements in one call');

my ($rc, $out, $err) = $node->psql('postgres', 'SELECT 1/0');
is($rc, 3, 'psql returns 3 on an SQL error');
like($err, qr/division by zero/, 'psql returns stderr');
ok(!eval { $node->safe_psql('postgres', 'SELECT nosuchcolumn'); 1 }, 'safe_psql dies on error');
like($@, qr/nosuchcolumn/, 'safe_psql dies with the server message');

# --- users and secrets ------------------------------------------------------------
my $md5_pw = 'md5 pass';
my $scram_pw = q{sc'ram"pw};
$node->create_user('u_md5', $md5_pw, method => 'md5');
$node->create_user('u_scram', $scram_pw, method => 'scram-sha-256');
is($node->user_secret('u_md5'), 'md5' . md5_hex($md5_pw . 'u_md5'),
	'user_secret returns the md5 verifier');
like($node->user_secret('u_scram'), qr/^SCRAM-SHA-256\$4096:[A-Za-z0-9+\/=]+\$[A-Za-z0-9+\/=]+:[A-Za-z0-9+\/=]+$/,
	'user_secret returns the SCRAM verifier');

is($node->safe_psql('postgres', 'SELECT current_user', user => 'u_scram',
	password => $scram_pw), 'u_scram', 'scram user logs in over TCP with its password');
($rc, $out, $err) = $node->psql('postgres', 'SELECT 1', user => 'u_scram',
	password => 'wrong');
isnt($rc, 0, 'wrong password is refused');
like($err, qr/password authentication failed for user "u_scram"/, '... with the auth error');

($rc, $out, $err) = $node->psql('postgres', 'SELECT 1', user => 'u_md5',
	password => $md5_pw);
isnt($rc, 0, 'md5-stored password cannot pass scram-sha-256 hba');
$node->write_hba('host all u_md5 127.0.0.1/32 md5');
$node->reload;
ok($node->poll_query_until('postgres', 'SELECT current_user', 'u_md5',
	user => 'u_md5', password => $md5_pw), 'md5 user logs in after hba md5 rule + reload');
is($node->safe_psql('postgres', 'SELECT current_user', user => 'u_scram',
	password => undef, host => $node->socket_dir), 'u_scram',
	'Unix socket connections are trusted');

# --- DBD::Pg ----------------------------------------------------------------------
my $dbh = $node->connect_dbi('postgres', user => 'u_scram', password => $scram_pw);
is($dbh->selectrow_array('SELECT current_user'), 'u_scram', 'DBD::Pg connects as scram user');
$dbh->disconnect;
$dbh = $node->connect_dbi('postgres', user => 'u_md5', password => $md5_pw);
is($dbh->selectrow_array('SELECT 40 + 2'), 42, 'DBD::Pg connects as md5 user');
$dbh->disconnect;
ok(!eval { $node->connect_dbi('postgres', user => 'u_scram', password => 'bad'); 1 },
	'DBD::Pg with a wrong password fails');

# --- pgbench --------------------------------------------------------------------------
($rc, $out, $err) = $node->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i works') or diag($err);
($rc, $out, $err) = $node->pgbench('-n', '-S', '-c', '2', '-t', '10');
is($rc, 0, 'pgbench run works') or diag($err);
like($out, qr/number of transactions actually processed: 20\/20/, 'pgbench ran 20 transactions');

# --- restart ---------------------------------------------------------------------------
my $t0 = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
$node->restart;
my $t1 = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
isnt($t1, $t0, 'restart started a new postmaster');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'u\\_%'"),
	2, 'query succeeds after restart, data survived');
like($node->log_content, qr/database system is ready to accept connections/,
	'log_content returns the server log');

# --- stop ---------------------------------------------------------------------------------
$node->stop;
ok(!port_is_listening($node->host, $node->port), 'nothing listens on the port after stop');
ok(!-e $node->socket_dir . '/.s.PGSQL.' . $node->port, 'Unix socket removed');
ok(!-e $node->data_dir . '/postmaster.pid', 'postmaster.pid removed');
ok($node->stop, 'stop on a stopped cluster is a no-op');
$node->start;
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'start again after stop');
$node->stop(mode => 'immediate');
ok(!port_is_listening($node->host, $node->port), 'immediate stop');

# --- teardown: going out of scope -------------------------------------------------------
my ($sport, $sdir);
{
	my $scoped = PgSlab::Test::Cluster->new(name => 'scoped', dbname => 'scoped_db');
	$scoped->start;
	($sport, $sdir) = ($scoped->port, $scoped->basedir);
	is($scoped->safe_psql('scoped_db', 'SELECT current_database()'), 'scoped_db',
		'dbname option creates the default database');
}
ok(!port_is_listening('127.0.0.1', $sport), 'DESTROY stops the server');
ok(!-e $sdir, 'DESTROY removes the directory');

# --- teardown: END block and signals, in child processes -----------------------------------
sub child_cluster
{
	my ($tail) = @_;
	my $code = 'use PgSlab::Test::Cluster; $| = 1; our $n = PgSlab::Test::Cluster->new(name => "child");'
	    . ' $n->start; print join(" ", $n->port, $n->basedir, $n->_postmaster_pid), "\n";'
	    . $tail;
	my $pid = open(my $fh, '-|', $^X, '-I', $libdir, '-e', $code) or die "fork: $!";
	my $line = <$fh> // '';
	chomp $line;
	return ($pid, $fh, split / /, $line);
}

# Gone or a zombie (the postmaster's parent is init, which reaps it in its
# own time); allow a moment for the exit to complete after the pid file goes.
sub process_gone
{
	my ($pid) = @_;
	for (1 .. 100) {
		open(my $fh, '<', "/proc/$pid/stat") or return 1;
		my $st = <$fh> // '';
		return 1 if $st =~ /^\d+ \(.*\) Z/;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

my ($cpid, $cfh, $cport, $cdir, $pmpid) = child_cluster('exit 0;');
ok($cport && $pmpid, 'child process started a cluster');
close $cfh;
is($? >> 8, 0, 'child exited normally');
ok(!port_is_listening('127.0.0.1', $cport), 'END block stops the server');
ok(process_gone($pmpid), 'END block: postmaster is gone');
ok(!-e $cdir, 'END block removes the directory');

($cpid, $cfh, $cport, $cdir, $pmpid) = child_cluster('sleep 60;');
ok(port_is_listening('127.0.0.1', $cport), 'child cluster is up');
kill 'TERM', $cpid;
close $cfh;
is($? >> 8, 143, 'SIGTERM handler exits with 128+15');
ok(!port_is_listening('127.0.0.1', $cport), 'SIGTERM handler stops the server');
ok(process_gone($pmpid), 'SIGTERM handler: postmaster is gone');
ok(!-e $cdir, 'SIGTERM handler removes the directory');

done_testing();
