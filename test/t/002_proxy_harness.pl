# 002_proxy_harness.pl -- PgSlab::Test::Proxy: config generation and process control, without pgslab.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use PgSlab::Test::Cluster qw(port_is_listening);
use PgSlab::Test::Proxy;

delete $ENV{PGSLAB_KEEP_TMP};

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or die "$path: $!";
	local $/;
	return scalar <$fh>;
}

# Minimal reader for what we generate: returns ([section order], {sec => {k => v}}).
sub parse_ini
{
	my ($text) = @_;
	my (@order, %ini, $sec);
	for (split /\n/, $text) {
		next if /^\s*(;|#|$)/;
		if (/^\[(\w+)\]$/) {
			$sec = $1;
			push @order, $sec;
			$ini{$sec} = {};
		} elsif (/^(\S+) = (.*)$/) {
			die "key outside section: $_" unless defined $sec;
			$ini{$sec}{$1} = $2;
		} else {
			die "unexpected ini line: $_";
		}
	}
	return (\@order, \%ini);
}

my $node = PgSlab::Test::Cluster->new(name => 'c002', dbname => 'appdb');
$node->start;
my $cport = $node->port;

# --- defaults derived from the cluster -------------------------------------------
my $p = PgSlab::Test::Proxy->new(cluster => $node);
ok(-f $p->ini_path && -f $p->userlist_path, 'new() writes pgslab.ini and userlist.txt');
is((stat $p->ini_path)[2] & 0777, 0600, 'ini is mode 0600');
my ($order, $ini) = parse_ini(slurp($p->ini_path));
is_deeply($order, [qw(databases pgbouncer)], 'sections: databases, pgbouncer; no [users] unless given');
is_deeply($ini->{databases}, {
	postgres => "host=127.0.0.1 port=$cport dbname=postgres",
	appdb    => "host=127.0.0.1 port=$cport dbname=appdb",
}, 'default databases: postgres and the cluster default database');
my $dir = $p->basedir;
is_deeply($ini->{pgbouncer}, {
	listen_addr     => '127.0.0.1',
	listen_port     => $p->port,
	unix_socket_dir => $dir,
	auth_type       => 'scram-sha-256',
	auth_file       => "$dir/userlist.txt",
	logfile         => "$dir/pgslab.log",
	admin_users     => 'pgsuper',
	pool_mode       => 'session',
}, 'default [pgbouncer] settings');
isnt($p->port, $cport, 'proxy port differs from the cluster port');
ok(!port_is_listening('127.0.0.1', $p->port), 'proxy port is free');
is($p->host, '127.0.0.1', 'host');
is($p->socket_dir, $dir, 'socket_dir defaults to the temp dir');
my $su_secret = $node->user_secret('pgsuper');
is(slurp($p->userlist_path), qq{"pgsuper" "$su_secret"\n},
	'userlist defaults to the superuser with its SCRAM verifier');

# --- explicit databases, users, settings, userlist ----------------------------------
$node->create_user('app', 'app_pw', method => 'md5');
$node->create_user(q{we"ird}, 'x', method => 'scram-sha-256');
my $ul = userlist_from_cluster($node, 'app', q{we"ird});
is($ul->[0][0], 'app', 'userlist_from_cluster keeps names');
like($ul->[0][1], qr/^md5[0-9a-f]{32}$/, 'userlist_from_cluster: md5 verifier');
like($ul->[1][1], qr/^SCRAM-SHA-256\$/, 'userlist_from_cluster: SCRAM verifier');

my $q = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'explicit',
	databases => {
		db1 => "host=127.0.0.1 port=$cport dbname=postgres pool_size=3",
		db2 => { host => '127.0.0.1', port => $cport, dbname => 'appdb',
			application_name => q{it's mine} },
		'*' => "host=127.0.0.1 port=$cport",
	},
	users    => { app => 'pool_mode=statement max_user_connections=2' },
	settings => { pool_mode => 'transaction', default_pool_size => 5,
		logfile => undef, auth_type => 'md5' },
	userlist => [ @$ul, [ 'plain', q{pa"ss word} ] ],
	add_superuser => 0,
	admin_user => 'app', admin_password => 'app_pw');
($order, $ini) = parse_ini(slurp($q->ini_path));
is_deeply($order, [qw(databases users pgbouncer)], 'sections in order databases, users, pgbouncer');
is($ini->{databases}{db1}, "host=127.0.0.1 port=$cport dbname=postgres pool_size=3",
	'string database entry written verbatim');
is($ini->{databases}{db2},
	"application_name='it''s mine' dbname=appdb host=127.0.0.1 port=$cport",
	'hashref database entry: sorted, quoted');
is($ini->{databases}{'*'}, "host=127.0.0.1 port=$cport", 'fallback database entry');
is_deeply($ini->{users}, { app => 'pool_mode=statement max_user_connections=2' },
	'[users] section');
is($ini->{pgbouncer}{pool_mode}, 'transaction', 'settings override defaults');
is($ini->{pgbouncer}{default_pool_size}, 5, 'settings add keys');
is($ini->{pgbouncer}{auth_type}, 'md5', 'auth_type override');
ok(!exists $ini->{pgbouncer}{logfile}, 'undef setting removes a default');
is($ini->{pgbouncer}{admin_users}, 'app', 'admin_users follows admin_user');
my @ul_lines = split /\n/, slurp($q->userlist_path);
is(scalar @ul_lines, 3, 'userlist has exactly the given users');
is($ul_lines[0], qq{"app" "$ul->[0][1]"}, 'userlist line for app');
is($ul_lines[1], qq{"we""ird" "$ul->[1][1]"}, 'double quote in a user name is doubled');
is($ul_lines[2], q{"plain" "pa""ss word"}, 'plain-text secret quoted, quote doubled');

# --- set / write_config / reload ------------------------------------------------------
$q->set(pool_mode => 'session', server_lifetime => 60);
$q->set_databases(db1 => undef, db3 => "host=127.0.0.1 port=$cport dbname=appdb");
$q->set_userlist([ [ 'only', 'secret' ] ]);
$q->write_config;
($order, $ini) = parse_ini(slurp($q->ini_path));
is($ini->{pgbouncer}{pool_mode}, 'session', 'set() changes a setting');
is($ini->{pgbouncer}{server_lifetime}, 60, 'set() adds a setting');
ok(!exists $ini->{databases}{db1} && exists $ini->{databases}{db3},
	'set_databases removes and adds entries');
is(slurp($q->userlist_path), qq{"only" "secret"\n}, 'set_userlist replaces the userlist');
ok(!eval { $q->reload; 1 }, 'reload dies when pgslab is not running');

my $nc = PgSlab::Test::Proxy->new(databases => { x => 'host=127.0.0.1 port=1' },
	userlist => [ [ 'u', 'p' ] ]);
is(slurp($nc->userlist_path), qq{"u" "p"\n}, 'proxy without a cluster');
ok(!eval { PgSlab::Test::Proxy->new(settings => {}); 1 }, 'new() without cluster or databases dies');

# --- process control, with stand-in programs (not pgslab) ------------------------------
my $bad = PgSlab::Test::Proxy->new(cluster => $node, name => 'bad', binary => '/bin/false');
ok(!eval { $bad->start; 1 }, 'start dies when the program exits');
like($@, qr/exited during startup/, '... saying so');
ok(!$bad->is_running, 'nothing left running');

# A stand-in that listens on listen_port from the ini and prints its argv.
my $tmp = File::Temp->newdir('pgslab_fake_XXXXXX', TMPDIR => 1);
my $fake = "$tmp/fake";
open(my $fh, '>', $fake) or die;
print $fh <<'EOS';
#!/usr/bin/perl
use strict; use warnings; use Socket;
$| = 1;
my $ini = $ARGV[-1];
open(my $in, '<', $ini) or die "no ini: $!";
my ($port) = map { /^listen_port = (\d+)/ ? $1 : () } <$in>;
print "argv: @ARGV\n";
$SIG{INT} = (grep { $_ eq '--ignore-int' } @ARGV) ? 'IGNORE' : sub { print "got INT\n"; exit 0 };
$SIG{HUP} = sub { print "got HUP\n" };
$SIG{QUIT} = sub { print "got QUIT\n"; exit 3 };
select(undef, undef, undef, 0.3);  # not listening at once: start() must wait
socket(my $s, AF_INET, SOCK_STREAM, 0) or die;
setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1);
bind($s, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or die "bind: $!";
listen($s, 16) or die;
while (1) { my $c; close $c if accept($c, $s); }
EOS
close $fh;
chmod 0755, $fake;

my $f = PgSlab::Test::Proxy->new(cluster => $node, name => 'fake', binary => $fake,
	verbose => 2, args => ['--extra']);
ok($f->start, 'start waits until the port accepts connections');
ok(port_is_listening('127.0.0.1', $f->port), 'port is listening');
ok($f->is_running && $f->pid, 'is_running, pid');
ok($f->wait_for_log(qr/argv: -v -v --extra \Q${\$f->ini_path}\E/),
	'command line: -v per verbose level, args, then the ini path');
ok($f->reload, 'reload sends SIGHUP');
ok($f->wait_for_log(qr/got HUP/), 'SIGHUP delivered');
is($f->stop, 0, 'stop sends SIGINT and returns the wait status');
like($f->log_content, qr/got INT/, 'SIGINT was delivered');
ok(!$f->is_running && !defined $f->pid, 'not running after stop');
ok(!port_is_listening('127.0.0.1', $f->port), 'port closed after stop');

my $stubborn = PgSlab::Test::Proxy->new(cluster => $node, name => 'stubborn',
	binary => $fake, args => ['--ignore-int']);
$stubborn->start;
is($stubborn->stop(timeout => 0.5), 3 << 8, 'stop escalates to SIGQUIT when SIGINT is ignored');
like($stubborn->log_content, qr/got QUIT/, '... SIGQUIT was delivered');

my ($spid, $sdir);
{
	my $scoped = PgSlab::Test::Proxy->new(cluster => $node, name => 'scoped', binary => $fake);
	$spid = $scoped->start;
	$sdir = $scoped->basedir;
	$scoped->kill_signal('HUP');
}
ok(!kill(0, $spid), 'DESTROY stops the process');
ok(!-e $sdir, 'DESTROY removes the directory');

# --- end to end against PgBouncer, the reference pooler (still not pgslab) -------------
# Proves the client-side helpers (psql, admin, DBI, pgbench, reload) work
# against a real pooler speaking the protocol pgslab must speak.
my $pgb = '/usr/sbin/pgbouncer';
ok(-x $pgb, "$pgb is installed (make deps)") or BAIL_OUT('pgbouncer missing');
$node->create_user('sapp', 'sapp_pw', method => 'scram-sha-256');
my $b = PgSlab::Test::Proxy->new(cluster => $node, name => 'pgbouncer',
	binary   => $pgb,
	admin_db => 'pgbouncer',
	run_as   => ($> == 0 ? 'pgslab_pg' : undef),	# pgbouncer refuses root
	userlist => userlist_from_cluster($node, 'sapp'));
$b->start;
is($b->safe_psql('postgres', 'SELECT current_user'), 'pgsuper',
	'psql through the pooler as the default (super)user');
is($b->safe_psql('appdb', 'SELECT current_user || current_database()', user => 'sapp',
	password => 'sapp_pw'), 'sappappdb', 'psql with user/password options');
is($b->safe_psql('postgres', 'SELECT 7', host => $b->socket_dir), '7',
	'psql over the Unix socket in socket_dir');
my ($rc, $out, $err) = $b->psql('postgres', 'SELECT 1', user => 'sapp', password => 'nope');
isnt($rc, 0, 'wrong password refused by the pooler');
my @dbs = grep { $_->{name} eq 'appdb' } $b->admin_hash('SHOW DATABASES');
is(scalar @dbs, 1, 'admin_hash: SHOW DATABASES lists appdb');
is($dbs[0]{port}, $cport, 'admin_hash: columns by name');
my @pools = $b->admin('SHOW POOLS');
ok((grep { $_->[0] eq 'appdb' && $_->[1] eq 'sapp' } @pools), 'admin: rows as arrays');
is_deeply([ $b->admin('RELOAD') ], [], 'admin: command without result set');
my $dbh = $b->connect_dbi('postgres', user => 'sapp', password => 'sapp_pw');
is($dbh->selectrow_array('SELECT 40 + 2'), 42, 'DBD::Pg through the pooler');
$dbh->disconnect;
($rc, $out, $err) = $b->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i through the pooler') or diag($err);
($rc, $out, $err) = $b->pgbench('-n', '-S', '-c', '2', '-t', '10');
like($out, qr/processed: 20\/20/, 'pgbench run through the pooler') or diag($err);
$b->set(default_pool_size => 7);
$b->reload;
my $ok = 0;
for (1 .. 100) {
	my ($cfg) = grep { $_->{key} eq 'default_pool_size' } $b->admin_hash('SHOW CONFIG');
	last if $ok = ($cfg && $cfg->{value} eq '7');
	select(undef, undef, undef, 0.05);
}
ok($ok, 'set + reload: the pooler picked up the new setting');
like($b->log_content, qr/LOG/, 'log_content has the pooler log');
is($b->stop, 0, 'pooler exits cleanly on SIGINT');
ok(!port_is_listening('127.0.0.1', $b->port), 'pooler port closed');

$node->stop;
done_testing();
