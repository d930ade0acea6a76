# 041_admin_control.pl -- admin console control verbs: PAUSE/RESUME under load, KILL, RECONNECT, RELOAD, SET, SHUTDOWN.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use DBD::Pg qw(:async);
use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;

# documented helpers the module does not export
*spawn_command = \&PgSlab::Test::Cluster::spawn_command;
*wait_pid = \&PgSlab::Test::Cluster::wait_pid;

my $node = PgSlab::Test::Cluster->new(name => 'c041', dbname => 'appdb');
$node->start;
$node->create_user('app', 'app_pw');
$node->pgbench('-i', '-s', '1', '-q');
$node->safe_psql('postgres', 'GRANT SELECT ON ALL TABLES IN SCHEMA public TO app');

my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	settings => { pool_mode => 'transaction', default_pool_size => 4, query_wait_timeout => 30 },
	userlist => userlist_from_cluster($node, 'app', 'pgsuper'));
$proxy->start;
my $tmp = File::Temp->newdir('pgslab041_XXXXXX', TMPDIR => 1);

sub app
{
	my ($db, %params) = @_;
	return $proxy->connect_dbi($db // 'postgres', user => 'app', password => 'app_pw',
		params => \%params);
}

sub pool
{
	my ($db) = @_;
	my ($p) = grep { $_->{database} eq ($db // 'postgres') && $_->{user} eq 'app' }
		$proxy->admin_hash('SHOW POOLS');
	return $p // {};
}

sub state { return { map { $_->[0] => $_->[1] } $proxy->admin('SHOW STATE') } }

# A console command in the background (psql), to see whether it returns.
my $n_bg = 0;
sub admin_bg
{
	my ($sql) = @_;
	$n_bg++;
	return spawn_command([ pg_bindir() . '/psql', '-X', '-q', '-h', $proxy->host, '-p',
		$proxy->port, '-U', 'pgsuper', '-d', 'pgslab', '-v', 'ON_ERROR_STOP=1', '-c', $sql ],
		env => { PGPASSWORD => 'pgsuper_pw' }, stdout_file => "$tmp/bg$n_bg.out",
		stderr_file => "$tmp/bg$n_bg.err");
}

sub poll_until
{
	my ($cb, $secs) = @_;
	for (1 .. ($secs // 5) * 50) {
		return 1 if $cb->();
		select(undef, undef, undef, 0.02);
	}
	return 0;
}

sub xact_count
{
	my ($s) = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW STATS');
	return $s->{total_xact_count};
}

# --- PAUSE waits for the open transaction, holds new ones; RESUME releases them -------
my $a = app();
$a->begin_work;
$a->do('SELECT 1');
my $pid = admin_bg('PAUSE');
my $early;
ok($proxy->wait_for_log(qr/PAUSE command issued/), 'PAUSE reached pgslab');
select(undef, undef, undef, 0.3);
ok(!defined($early = wait_pid($pid, 0)), 'PAUSE does not return while a transaction is open');
$a->commit;
is($early // wait_pid($pid, 10), 0, 'PAUSE completes once the transaction has ended');
is(state()->{paused}, 'yes', 'SHOW STATE: paused');
ok(poll_until(sub { my $p = pool(); $p->{sv_active} == 0 && $p->{sv_idle} == 0 }),
	'paused pool: no active server, idle ones closed');
$a->do('SELECT 2', { pg_async => PG_ASYNC });
select(undef, undef, undef, 0.3);
ok(!$a->pg_ready, 'a new transaction is held while paused');
is(pool()->{cl_waiting}, 1, '... the client waits (cl_waiting)');
my ($rc, $out, $err) = $proxy->psql('pgslab', 'PAUSE');
like($err, qr/already suspended\/paused/, 'second PAUSE: error');
is_deeply([ $proxy->admin('RESUME') ], [], 'RESUME');
ok(poll_until(sub { $a->pg_ready }), 'the held transaction goes on');
is($a->pg_result, 1, '... and succeeds');
is(state()->{active}, 'yes', 'SHOW STATE: active again');
($rc, $out, $err) = $proxy->psql('pgslab', 'RESUME');
like($err, qr/pooler is not paused\/suspended/, 'RESUME when not paused: error');

# --- PAUSE during a pgbench run: held, then released with zero failed transactions ---
my %benv = (PGHOST => $proxy->host, PGPORT => $proxy->port, PGUSER => 'app',
	PGPASSWORD => 'app_pw', PGDATABASE => 'postgres');
my $bpid = spawn_command([ pg_bindir() . '/pgbench', '-n', '-S', '-c', '4', '-T', '4' ],
	env => \%benv, stdout_file => "$tmp/bench.out", stderr_file => "$tmp/bench.err");
ok(poll_until(sub { pool()->{sv_active} > 0 }), 'pgbench running through pgslab');
select(undef, undef, undef, 0.5);
$proxy->admin('PAUSE');
ok(poll_until(sub { pool()->{cl_waiting} == 4 }), 'PAUSE: all four pgbench clients held');
my $x1 = xact_count();
select(undef, undef, undef, 0.5);
is(xact_count(), $x1, 'no transaction runs while paused');
is(pool()->{sv_active}, 0, 'no server is active while paused');
$proxy->admin('RESUME');
ok(poll_until(sub { xact_count() > $x1 }), 'RESUME: transactions run again');
is(wait_pid($bpid, 30), 0, 'pgbench exits 0');
my $bout = do { local (@ARGV, $/) = ("$tmp/bench.out"); <> } // '';
like($bout, qr/number of failed transactions: 0 \(/, 'pgbench: zero failed transactions');
my ($done) = $bout =~ m{processed: (\d+)};
ok($done && $done > 0, "pgbench processed $done transactions");

# --- KILL drops a database's clients with a clear error; RESUME db lets new ones in --------
my $k = app('appdb');
$k->do('SELECT 1');
is_deeply([ $proxy->admin('KILL appdb') ], [], 'KILL appdb');
ok(!eval { $k->do('SELECT 1'); 1 }, 'the killed database\'s client is gone');
like($@, qr/database "appdb" was killed by the administrator \(KILL\)/, '... with a clear error');
my ($dbrow) = grep { $_->{name} eq 'appdb' } $proxy->admin_hash('SHOW DATABASES');
is($dbrow->{paused}, 1, 'a killed database stays paused');
is($dbrow->{current_connections}, 0, '... with its servers closed');
ok(eval { app()->selectrow_array('SELECT 1') }, 'other databases are untouched');
my $k2 = app('appdb');
$k2->do('SELECT 3', { pg_async => PG_ASYNC });
select(undef, undef, undef, 0.3);
ok(!$k2->pg_ready, 'a new client of the killed database is held');
($rc, $out, $err) = $proxy->psql('pgslab', 'RESUME nosuch');
like($err, qr/no such database: nosuch/, 'RESUME nosuch: error');
$proxy->admin('RESUME appdb');
ok(poll_until(sub { $k2->pg_ready }) && $k2->pg_result, 'RESUME appdb releases it');
($rc, $out, $err) = $proxy->psql('pgslab', 'KILL pgslab');
like($err, qr/cannot kill admin db/, 'KILL of the console refused');

# --- KILL_CLIENT -----------------------------------------------------------------------
my $v = app('postgres', application_name => 'victim041');
$v->do('SELECT 1');
my ($vrow) = grep { $_->{application_name} eq 'victim041' } $proxy->admin_hash('SHOW CLIENTS');
ok($vrow && $vrow->{id} > 0, 'SHOW CLIENTS gives the client id');
is_deeply([ $proxy->admin("KILL_CLIENT $vrow->{id}") ], [], 'KILL_CLIENT id');
ok(!eval { $v->do('SELECT 1'); 1 }, 'the client is gone');
like($@, qr/admin forced disconnect/, '... told why');
($rc, $out, $err) = $proxy->psql('pgslab', 'KILL_CLIENT 999999');
like($err, qr/client not found/, 'KILL_CLIENT unknown id: error');
($rc, $out, $err) = $proxy->psql('pgslab', 'KILL_CLIENT not_a_number');
like($err, qr/invalid client pointer supplied/, 'KILL_CLIENT non-numeric id: PgBouncer\'s error');
($rc, $out, $err) = $proxy->psql('pgslab', 'KILL_CLIENT 1x');
like($err, qr/invalid client pointer supplied/, 'KILL_CLIENT with trailing junk: refused');
($rc, $out, $err) = $proxy->psql('pgslab', 'KILL nosuchdb');
like($err, qr/no such database: nosuchdb/, 'KILL of an unknown database: error');

# --- RECONNECT and WAIT_CLOSE ----------------------------------------------------------------
my $r = app();
$r->do('SELECT 1');
my %old = map { $_->{id} => 1 } grep { $_->{database} eq 'postgres' }
	$proxy->admin_hash('SHOW SERVERS');
ok(%old, 'servers before RECONNECT');
$r->begin_work;
$r->do('SELECT 1');
$proxy->admin('RECONNECT postgres');
my @sv = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW SERVERS');
ok(@sv && !(grep { $_->{close_needed} ne '1' } @sv),
	'RECONNECT: idle servers closed, the busy one marked close_needed');
$pid = admin_bg('WAIT_CLOSE postgres');
ok($proxy->wait_for_log(qr/WAIT_CLOSE 'postgres' command issued/), 'WAIT_CLOSE reached pgslab');
select(undef, undef, undef, 0.3);
ok(!defined($early = wait_pid($pid, 0)), 'WAIT_CLOSE waits for the busy server');
$r->commit;
is($early // wait_pid($pid, 10), 0, 'WAIT_CLOSE completes once it is released');
$r->do('SELECT 1');
@sv = grep { $_->{database} eq 'postgres' } $proxy->admin_hash('SHOW SERVERS');
ok(@sv && !(grep { $old{ $_->{id} } || $_->{close_needed} ne '0' } @sv),
	'after RECONNECT only new server connections');

# --- DISABLE / ENABLE ----------------------------------------------------------------------
$proxy->admin('DISABLE appdb');
ok(!eval { app('appdb'); 1 }, 'DISABLE: new logins refused');
like($@, qr/database "appdb" is disabled/, '... with PgBouncer\'s reason');
$proxy->admin('ENABLE appdb');
ok(eval { app('appdb')->selectrow_array('SELECT 1') }, 'ENABLE: logins accepted again');
($rc, $out, $err) = $proxy->psql('pgslab', 'DISABLE');
like($err, qr/a database is required/, 'DISABLE without a database: error');

# --- RELOAD picks up a changed pool size ----------------------------------------------------
$proxy->set(default_pool_size => 1);
$proxy->write_config;
$proxy->admin('RELOAD');
my ($d) = grep { $_->{name} eq 'postgres' } $proxy->admin_hash('SHOW DATABASES');
is($d->{pool_size}, 1, 'RELOAD: pool_size 1');
my ($c1, $c2) = (app(), app());
$c1->begin_work;
$c1->do('SELECT 1');
$proxy->admin('RECONNECT postgres'); # drop the extra idle servers from the old size
$c2->do('SELECT 2', { pg_async => PG_ASYNC });
select(undef, undef, undef, 0.3);
ok(!$c2->pg_ready, 'pool size 1: a second transaction waits');
$proxy->set(default_pool_size => 3);
$proxy->write_config;
$proxy->admin('RELOAD');
ok(poll_until(sub { $c2->pg_ready }) && $c2->pg_result, 'RELOAD to 3: the waiter gets a server');
$c1->commit;
($d) = grep { $_->{name} eq 'postgres' } $proxy->admin_hash('SHOW DATABASES');
is($d->{pool_size}, 3, 'SHOW DATABASES: pool_size 3');
$proxy->set(pool_mode => 'bogus');
$proxy->write_config;
($rc, $out, $err) = $proxy->psql('pgslab', 'RELOAD');
like($err, qr/RELOAD failed, see logs for additional details/,
	'RELOAD of a broken config: PgBouncer\'s error');
unlike($err, qr/\.ini|pool_mode/, '... which names no path nor setting');
ok($proxy->wait_for_log(qr/reload failed, the running configuration stays in force: .*pool_mode/),
	'... the detail is in the log');
my ($logfile_part) = split /\n--- pgslab stdout\/stderr ---\n/, $proxy->log_content;
is(scalar(() = $logfile_part =~ /pool_mode.*bogus|bogus.*pool_mode/g), 1, '... once in the log file (as PgBouncer)');
$proxy->set(pool_mode => 'transaction');
$proxy->write_config;

# --- RELOAD of a changed database entry: idle servers go at once, busy ones
# when released; every new transaction runs on the new target ---------------
{
	my $orig = $proxy->{databases}{postgres};
	my ($a1, $a2) = (app(), app());
	is($a1->selectrow_array('SELECT current_database()'), 'postgres', 'before: postgres');
	$a2->begin_work;
	is($a2->selectrow_array('SELECT current_database()'), 'postgres', 'a transaction open on it');
	(my $moved = $orig) =~ s/dbname=postgres/dbname=appdb/;
	$proxy->set_databases(postgres => $moved);
	$proxy->write_config;
	$proxy->admin('RELOAD');
	is($a1->selectrow_array('SELECT current_database()'), 'appdb',
		'RELOAD with dbname=appdb: the next transaction runs on appdb at once');
	is($a2->selectrow_array('SELECT current_database()'), 'postgres', 'the open transaction stays where it was');
	$a2->commit;
	is($a2->selectrow_array('SELECT current_database()'), 'appdb', '... and moves once it ended');
	$a1->disconnect;
	$a2->disconnect;
	$proxy->set_databases(postgres => $orig);
	$proxy->write_config;
	$proxy->admin('RELOAD');
	is(app()->selectrow_array('SELECT current_database()'), 'postgres', 'RELOAD back: postgres again');
}

# --- SET ---------------------------------------------------------------------------------
sub cfg
{
	my ($key) = @_;
	my ($row) = grep { $_->{key} eq $key } $proxy->admin_hash('SHOW CONFIG');
	return $row->{value};
}
$proxy->admin('SET default_pool_size = 9');
is(cfg('default_pool_size'), 9, 'SET key = value; SHOW CONFIG reflects it');
$proxy->admin('set default_pool_size to 10;');
is(cfg('default_pool_size'), 10, 'set key to value;');
$proxy->admin(q{SET server_reset_query = 'DISCARD ALL'});
is(cfg('server_reset_query'), 'DISCARD ALL', 'quoted value');
($rc, $out, $err) = $proxy->psql('pgslab', 'SET listen_port = 1');
like($err, qr/"listen_port" cannot be changed at run time/, 'non-changeable key: error');
($rc, $out, $err) = $proxy->psql('pgslab', 'SET nosuch = 1');
like($err, qr/unknown setting "nosuch"/, 'unknown key: error');
($rc, $out, $err) = $proxy->psql('pgslab', 'SET default_pool_size = lots');
like($err, qr/invalid value "lots"/, 'bad value: error');
is(cfg('default_pool_size'), 10, '... value unchanged');

# --- SUSPEND / RESUME ----------------------------------------------------------------------
# listeners stop too, so RESUME must come from an open console connection
my $con = $proxy->connect_dbi('pgslab', attrs => { pg_server_prepare => 0 });
my $busy = app();
$con->do('SUSPEND');
my %st = map { @$_ } @{ $con->selectall_arrayref('SHOW STATE') };
is($st{suspended}, 'yes', 'SUSPEND: SHOW STATE suspended');
$busy->do('SELECT 4', { pg_async => PG_ASYNC });
select(undef, undef, undef, 0.3);
ok(!$busy->pg_ready, 'a suspended client is not served');
$con->do('RESUME');
%st = map { @$_ } @{ $con->selectall_arrayref('SHOW STATE') };
is($st{active}, 'yes', 'RESUME after SUSPEND');
ok(poll_until(sub { $busy->pg_ready }) && $busy->pg_result, '... the held query runs');
ok(eval { app()->selectrow_array('SELECT 1') }, 'queries run after RESUME');

# --- SHUTDOWN ------------------------------------------------------------------------------
($rc, $out, $err) = $proxy->psql('pgslab', 'SHUTDOWN NOW_PLEASE');
like($err, qr/invalid command/, 'SHUTDOWN with a bad mode: error');
$proxy->admin('SHUTDOWN');
is($proxy->wait_exit(timeout => 10), 0, 'SHUTDOWN: pgslab exits cleanly');

$node->stop;
done_testing();
