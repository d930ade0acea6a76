# 068_console_peer.pl -- issue 14: the console's own login.  As PgBouncer, user
# "pgbouncer" (and our alias "pgslab") may log in to the admin console over the Unix
# socket without a password when the peer's OS user (SO_PEERCRED) is pgslab's own.
# Everything else still authenticates: other uids, TCP, other names, other databases.

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c068');
$node->start;

# pgslab runs as an unprivileged OS user when we are root, so that a second uid (ours)
# can knock on the same socket; otherwise it runs as us and only the own-uid cases exist.
my $root = $> == 0;
my @own = $root ? do { my @pw = getpwnam('pgslab_pg') or die "no OS user pgslab_pg"; ($pw[2], $pw[3]) } : ();
my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p068',
	run_as => ($root ? 'pgslab_pg' : undef),
	settings => { log_connections => 1 });
$proxy->start;
my $sock = $proxy->socket_dir;

sub as_own
{
	my ($db, $sql, %o) = @_;
	return $proxy->psql($db, $sql, host => $sock, password => undef, extra_args => ['-w'],
		($root ? (as_user => [@own]) : ()), %o);
}

for my $u ('pgbouncer', 'pgslab') {
	for my $db ('pgbouncer', 'pgslab') {
		my ($rc, $out, $err) = as_own($db, 'SHOW VERSION', user => $u);
		is($rc, 0, "own uid over the Unix socket: user $u, database $db, no password") or diag($err);
		like($out, qr/pgslab|PgBouncer/i, "... and SHOW VERSION answers ($u/$db)");
	}
}

# admin rights, not only stats: PAUSE/RESUME are admin-only commands
my ($rc, $out, $err) = as_own('pgbouncer', "PAUSE postgres;\nRESUME postgres", user => 'pgbouncer');
is($rc, 0, 'the peer console user has admin rights (PAUSE/RESUME)') or diag($err);

# the console sees itself as user pgbouncer
($rc, $out, $err) = as_own('pgbouncer', 'SHOW CLIENTS', user => 'pgbouncer');
like($out, qr/^C\|pgbouncer\|pgbouncer\|/m, 'SHOW CLIENTS lists the peer login as user pgbouncer, database pgbouncer')
	or diag("out: $out\nerr: $err");

# not the console's name: a password is still asked for, even for an admin_users member
my $su = $node->superuser;
($rc, $out, $err) = as_own('pgbouncer', 'SHOW VERSION', user => $su);
isnt($rc, 0, "own uid, user $su (in admin_users) without a password: refused");
like($err, qr/password/i, '... with a password error') or diag($err);

# not the console: user pgbouncer to a real database gets no free pass
($rc, $out, $err) = as_own('postgres', 'SELECT 1', user => 'pgbouncer');
isnt($rc, 0, 'own uid, user pgbouncer, database postgres: refused (the pass is for the console only)');

# not the Unix socket: TCP from the same uid authenticates
($rc, $out, $err) = as_own('pgbouncer', 'SHOW VERSION', user => 'pgbouncer', host => $proxy->host);
isnt($rc, 0, 'own uid over TCP, user pgbouncer, no password: refused');

SKIP: {
	skip 'a second OS user is needed to knock from another uid (run as root)', 3 unless $root;
	my ($rc2, $out2, $err2) = $proxy->psql('pgbouncer', 'SHOW VERSION', host => $sock,
		user => 'pgbouncer', password => undef, extra_args => ['-w']);
	isnt($rc2, 0, 'another uid (root) over the Unix socket, user pgbouncer, no password: refused');
	($rc2, $out2, $err2) = $proxy->psql('pgbouncer', 'SHOW VERSION', host => $sock,
		user => 'pgbouncer', password => '', extra_args => ['-w']);
	isnt($rc2, 0, '... and with an empty password: refused');
	($rc2, $out2, $err2) = $proxy->psql('pgslab', 'SHOW VERSION', host => $sock,
		user => 'pgslab', password => 'x', extra_args => ['-w']);
	isnt($rc2, 0, '... and as pgslab with a wrong password: refused');
}

# still serving, and the log names the path taken
is($proxy->safe_psql('postgres', 'SELECT 68'), '68', 'pgslab still serves');
$proxy->stop;
my $log = PgSlab::Test::Cluster::_slurp($proxy->logfile);
like($log, qr/console access from unix socket by pgslab's own OS user/, 'the peer login is logged');
done_testing();
